// Collectives across real MPI ranks (run under mpiexec -n 2..3): sums, gathers, and
// FID statistics merged across ranks equal the one-shot statistics of all rows.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "common/communicator.h"
#include "common/error.h"
#include "common/nccl_communicator.h"
#include "eval/feature_stats.h"

namespace difffit {
namespace {

std::unique_ptr<Communicator>& world() {
  static std::unique_ptr<Communicator> communicator;
  return communicator;
}

// The collectives' results, the same for every implementation (MPI, NCCL).
void expect_allreduce_and_broadcast(Communicator& comm) {
  const int n = comm.size();
  at::Tensor t = at::full({3}, static_cast<double>(comm.rank() + 1), at::kDouble);
  comm.allreduce_sum(t);
  EXPECT_TRUE(at::equal(t, at::full({3}, n * (n + 1) / 2.0, at::kDouble)));
  at::Tensor b = at::full({2}, comm.rank() == 0 ? 7 : -1, at::kLong);
  comm.broadcast(b, 0);
  EXPECT_TRUE(at::equal(b, at::full({2}, 7, at::kLong)));
}

void expect_allgather_in_rank_order(Communicator& comm) {
  auto all = comm.allgather(at::full({2}, static_cast<float>(comm.rank()), at::kFloat));
  ASSERT_EQ(static_cast<int>(all.size()), comm.size());
  for (int r = 0; r < comm.size(); ++r) EXPECT_TRUE(at::equal(all[r], at::full({2}, static_cast<float>(r))));
}

// Only the root receives: the other ranks get nothing back.
void expect_gather_on_root_only(Communicator& comm) {
  const int root = comm.size() - 1;
  auto all = comm.gather(at::full({2, 3}, static_cast<double>(comm.rank()), at::kDouble), root);
  if (comm.rank() != root) {
    EXPECT_TRUE(all.empty());
    return;
  }
  ASSERT_EQ(static_cast<int>(all.size()), comm.size());
  for (int r = 0; r < comm.size(); ++r) EXPECT_TRUE(at::equal(all[r], at::full({2, 3}, static_cast<double>(r), at::kDouble)));
}

TEST(Mpi, AllreduceSumsEveryRanksTensor) { expect_allreduce_and_broadcast(*world()); }

TEST(Mpi, GatherBringsEveryRanksTensorToTheRootAlone) { expect_gather_on_root_only(*world()); }

TEST(Mpi, AllgatherReturnsRanksInOrder) { expect_allgather_in_rank_order(*world()); }

TEST(Mpi, FeatureStatsMergedAcrossRanksEqualTheOneShotStatistics) {
  Communicator& comm = *world();
  at::manual_seed(42);  // every rank draws the same rows, then keeps its share
  at::Tensor rows = at::randn({103, 6}, at::kDouble) * 3 + 1;
  FeatureStats all;
  all.add(rows);
  FeatureStats mine;
  // Rank 0 takes the most rows; the last rank of 3 takes none (an empty shard must merge too).
  const int64_t share = comm.size() == 3 ? (comm.rank() == 0 ? 60 : comm.rank() == 1 ? 43 : 0)
                                         : (comm.rank() == 0 ? 70 : 103 - 70);
  const int64_t start = comm.rank() == 0 ? 0 : (comm.rank() == 1 ? (comm.size() == 3 ? 60 : 70) : 103);
  if (comm.size() <= 3 && share > 0) mine.add(rows.narrow(0, start, share));
  FeatureStats merged = mine.merged_across(comm);
  EXPECT_EQ(merged.count(), 103);
  EXPECT_TRUE(at::allclose(merged.mean(), all.mean(), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(merged.covariance(), all.covariance(), 1e-12, 1e-12));
}

TEST(Mpi, RowsGatheredFromUnevenSharesComeBackInIndexOrder) {
  Communicator& comm = *world();
  // 5 rows in blocks of 2 over 2 or 3 ranks: some ranks hold fewer rows or none.
  const RowShare mine = row_share(5, 2, comm.rank(), comm.size());
  const at::Tensor rows = at::arange(mine.first, mine.first + mine.count, at::kLong).view({-1, 1}).repeat({1, 3});
  const at::Tensor all = allgather_rows(comm, rows, 5, 2);
  EXPECT_TRUE(at::equal(all, at::arange(5, at::kLong).view({-1, 1}).repeat({1, 3})));
  EXPECT_THROW(allgather_rows(comm, at::zeros({7, 3}, at::kLong), 5, 2), Error);  // not this rank's share

  const at::Tensor on_root = gather_rows(comm, rows.to(at::kByte), 5, 2);
  if (comm.rank() == 0) {
    EXPECT_TRUE(at::equal(on_root, at::arange(5, at::kLong).view({-1, 1}).repeat({1, 3}).to(at::kByte)));
  } else {
    EXPECT_FALSE(on_root.defined());
  }
  EXPECT_THROW(gather_rows(comm, at::zeros({7, 3}, at::kByte), 5, 2), Error);
}

TEST(Mpi, RankZerosWorkDecidesForAllAndItsFailureReachesEveryRank) {
  Communicator& comm = *world();
  int ran = 0;
  run_on_rank0(&comm, [&] { ++ran; });
  EXPECT_EQ(ran, comm.rank() == 0 ? 1 : 0);
  EXPECT_TRUE(rank0_decides(comm, comm.rank() == 0));
  try {
    run_on_rank0(&comm, [] { throw_data("broken.h5: bad"); });
    ADD_FAILURE() << "no rank may go on after rank 0 failed";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);  // the same exit code everywhere
    EXPECT_NE(std::string(e.what()).find(comm.rank() == 0 ? "broken.h5" : "rank 0 failed"), std::string::npos);
  }
}

// Where NCCL cannot run, every rank gets the same clear error (so all fall back to MPI
// together); where there is a GPU per rank, its collectives give MPI's results.
TEST(Nccl, FailsClearlyOnEveryRankWithoutAGpuElseMatchesMpi) {
  Communicator& mpi = *world();
  std::unique_ptr<Communicator> nccl;
  std::string error;
  try {
    nccl = make_nccl_communicator(mpi, mpi_local_rank());
  } catch (const Error& e) {
    error = e.what();
  }
  if (!nccl_compiled()) {
    EXPECT_NE(error.find("this build has no NCCL"), std::string::npos) << error;
    return;
  }
  if (cuda_device_count() == 0) {
    EXPECT_NE(error.find("NCCL: rank 0: no CUDA device visible"), std::string::npos) << error;
    return;
  }
  if (cuda_device_count() < mpi.size()) GTEST_SKIP() << "needs one CUDA device per rank";
  ASSERT_TRUE(nccl) << error;
  EXPECT_TRUE(nccl->takes_device_tensors());
  EXPECT_EQ(nccl->rank(), mpi.rank());
  const int n = mpi.size();
  expect_allreduce_and_broadcast(*nccl);
  expect_allgather_in_rank_order(*nccl);
  expect_gather_on_root_only(*nccl);
  at::Tensor f = at::arange(7, at::kFloat) * (mpi.rank() + 1);
  nccl->allreduce_sum(f);
  EXPECT_TRUE(at::equal(f, at::arange(7, at::kFloat) * (n * (n + 1) / 2)));
  nccl->barrier();
  at::manual_seed(7);
  at::Tensor rows = at::randn({40, 3}, at::kDouble);
  FeatureStats mine;
  mine.add(rows.narrow(0, mpi.rank() * (40 / n), 40 / n));
  FeatureStats by_nccl = mine.merged_across(*nccl), by_mpi = mine.merged_across(mpi);
  EXPECT_TRUE(at::allclose(by_nccl.covariance(), by_mpi.covariance(), 1e-12, 1e-12));
}

TEST(Local, TheSingleProcessCommunicatorIsAnIdentity) {
  auto comm = make_local_communicator();
  at::Tensor t = at::ones({2});
  comm->allreduce_sum(t);
  EXPECT_TRUE(at::equal(t, at::ones({2})));
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->allgather(t).size(), 1u);
}

}  // namespace
}  // namespace difffit

int main(int argc, char** argv) {
  difffit::MpiSession mpi(&argc, &argv);
  difffit::world() = difffit::make_mpi_communicator();
  ::testing::InitGoogleTest(&argc, argv);
  // Only rank 0 prints results; every rank runs and must pass.
  if (difffit::world()->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  at::Tensor any = at::full({1}, static_cast<int64_t>(failed != 0), at::kLong);
  difffit::world()->allreduce_sum(any);
  return any.item<int64_t>() == 0 ? 0 : 1;
}
