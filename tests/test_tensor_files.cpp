// Tests for reading/writing tensor files: torch.save checkpoints, safetensors,
// and the zip/pickle layers under them. Fixtures and expected values come from
// tests/python/make_torch_fixtures.py run with the real torch (the test Python);
// files written here are checked back in Python by the same script.
#include "common/error.h"
#include "common/input_file.h"
#include "common/pickle_reader.h"
#include "common/safetensors.h"
#include "common/torch_checkpoint.h"
#include "common/zip_archive.h"
#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <vector>

namespace difffit {
namespace {

namespace fs = std::filesystem;

std::string fixture_script() { return testing::test_scripts() + "/make_torch_fixtures.py"; }

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Runs the fixture script; returns its exit status and puts its output in *log.
int run_python(const std::vector<std::string>& args, const std::string& log_path, std::string* log) {
  std::string cmd = shell_quote(testing::test_python()) + " " + shell_quote(fixture_script());
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " > " + shell_quote(log_path) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  *log = read_file(log_path);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Message and kind of the difffit::Error thrown by fn; fails the test if none.
struct Caught {
  bool thrown = false;
  ErrorKind kind = ErrorKind::Internal;
  std::string message;
};
Caught catch_error(const std::function<void()>& fn) {
  Caught c;
  try {
    fn();
  } catch (const Error& e) {
    c.thrown = true;
    c.kind = e.kind();
    c.message = e.what();
  }
  return c;
}

#define EXPECT_DATA_ERROR(expr, ...)                                                  \
  do {                                                                                \
    const Caught caught_ = catch_error([&] { (void)(expr); });                        \
    ASSERT_TRUE(caught_.thrown) << #expr " did not throw difffit::Error";             \
    EXPECT_EQ(caught_.kind, ErrorKind::Data) << caught_.message;                      \
    for (const std::string& part_ : std::vector<std::string>{__VA_ARGS__})            \
      EXPECT_NE(caught_.message.find(part_), std::string::npos)                       \
          << "message lacks \"" << part_ << "\": " << caught_.message;                \
  } while (0)

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return "other";
  }
}

struct Expected {
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::string bytes;
};

// <case>.manifest lines: name \t dtype \t d0,d1,... \t file with the raw bytes.
std::map<std::string, Expected> read_manifest(const std::string& path) {
  std::map<std::string, Expected> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string part;
    while (std::getline(ss, part, '\t')) f.push_back(part);
    if (f.size() == 3) f.insert(f.begin() + 2, "");  // 0-d: empty shape field
    EXPECT_EQ(f.size(), 4u) << line;
    if (f.size() != 4) continue;
    Expected e;
    e.dtype = f[1];
    std::stringstream dims(f[2]);
    while (std::getline(dims, part, ',')) e.shape.push_back(std::stoll(part));
    e.bytes = read_file((fs::path(path).parent_path() / f[3]).string());
    out[f[0]] = e;
  }
  EXPECT_FALSE(out.empty()) << "empty manifest " << path;
  return out;
}

void expect_matches(const StateDict& got, const std::string& manifest) {
  const auto expected = read_manifest(manifest);
  std::set<std::string> got_keys, want_keys;
  for (const auto& kv : got) got_keys.insert(kv.first);
  for (const auto& kv : expected) want_keys.insert(kv.first);
  EXPECT_EQ(got_keys, want_keys) << manifest;
  for (const auto& kv : expected) {
    const auto it = got.find(kv.first);
    if (it == got.end()) continue;
    const at::Tensor& t = it->second;
    SCOPED_TRACE(kv.first);
    EXPECT_EQ(dtype_name(t.scalar_type()), kv.second.dtype);
    EXPECT_EQ(t.sizes().vec(), kv.second.shape);
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_TRUE(t.device().is_cpu());
    const std::size_t n = static_cast<std::size_t>(t.numel()) * t.element_size();
    ASSERT_EQ(n, kv.second.bytes.size());
    EXPECT_TRUE(n == 0 || std::memcmp(t.data_ptr(), kv.second.bytes.data(), n) == 0) << "values differ";
  }
}

class TensorFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/difffit_tensor_files_XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      setup_error_ = "mkdtemp failed";
      return;
    }
    dir_ = templ;
    std::string log;
    if (run_python({"make", dir_}, dir_ + "/make.log", &log) != 0)
      setup_error_ = "fixture script failed (" + testing::test_python() + " " + fixture_script() + "):\n" + log;
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static int python(const std::vector<std::string>& args, std::string* log) {
    return run_python(args, dir_ + "/check.log", log);
  }

  static std::string dir_;
  static std::string setup_error_;
};
std::string TensorFiles::dir_;
std::string TensorFiles::setup_error_;

// ---- torch.save checkpoints ----

TEST_F(TensorFiles, LoadsPlainStateDictWithViewsAndAllDtypes) {
  const StateDict sd = load_torch_checkpoint(path("plain.pt"));
  expect_matches(sd, path("plain.manifest"));
  EXPECT_EQ(sd.count("not_a_tensor"), 0u);

  // Independent of the manifest: views were resolved against the shared storage.
  const at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  ASSERT_EQ(sd.count("strided"), 1u);
  EXPECT_TRUE(at::equal(sd.at("strided"), base.slice(1, 0, 6, 2)));
  EXPECT_TRUE(at::equal(sd.at("transposed"), base.t()));
  EXPECT_TRUE(at::equal(sd.at("offset_slice"), at::arange(5, 11, at::kFloat)));
  EXPECT_EQ(sd.at("scalar").dim(), 0);
  EXPECT_EQ(sd.at("scalar").item<float>(), 3.5f);
  EXPECT_EQ(sd.at("i64")[3].item<std::int64_t>(), -(std::int64_t{1} << 62));
  EXPECT_EQ(sd.at("param")[2].item<float>(), 4.0f);
  EXPECT_EQ(sd.at("empty").sizes().vec(), (std::vector<std::int64_t>{0, 3}));
  // Owned copies: views of one storage no longer alias each other.
  EXPECT_NE(sd.at("base").data_ptr(), sd.at("strided").data_ptr());
  at::Tensor b = sd.at("base");
  b.fill_(0);
  EXPECT_EQ(sd.at("offset_slice")[0].item<float>(), 5.0f);
}

TEST_F(TensorFiles, LoadsDeflatedAndForcedZip64Archives) {
  for (const char* name : {"plain_deflated.pt", "plain_zip64.pt"}) {
    SCOPED_TRACE(name);
    expect_matches(load_torch_checkpoint(path(name)), path("plain.manifest"));
  }
}

TEST_F(TensorFiles, SelectChoosesSubDictOfTrainingDict) {
  expect_matches(load_torch_checkpoint(path("train.pt")), path("train_ema.manifest"));  // auto prefers ema
  expect_matches(load_torch_checkpoint(path("train.pt"), "ema"), path("train_ema.manifest"));
  expect_matches(load_torch_checkpoint(path("train.pt"), "model"), path("train_model.manifest"));
  // ema is None there, so auto falls through to state_dict.
  expect_matches(load_torch_checkpoint(path("train_sd.pt")), path("train_model.manifest"));
}

TEST_F(TensorFiles, SelectErrorsNameFileAndKeys) {
  const std::string f = path("train.pt");
  EXPECT_DATA_ERROR(load_torch_checkpoint(f, "weights"), f, "'weights'", "'model'", "'ema'", "'opt'", "'args'",
                    "'epoch'");
  EXPECT_DATA_ERROR(load_torch_checkpoint(f, "opt"), f, "no tensors", "'state'", "'param_groups'");
  EXPECT_DATA_ERROR(load_torch_checkpoint(f, "epoch"), f, "'epoch'", "not a dict");
  EXPECT_DATA_ERROR(load_torch_checkpoint(path("list.pt")), path("list.pt"), "top-level", "list");
}

TEST_F(TensorFiles, BrokenCheckpointsGiveClearErrors) {
  EXPECT_DATA_ERROR(load_torch_checkpoint(path("bad_storage.pt")), path("bad_storage.pt"),
                    "unsupported storage type torch.QUInt4x2Storage", "'w'");
  EXPECT_DATA_ERROR(load_torch_checkpoint(path("missing_storage.pt")), path("missing_storage.pt"),
                    "missing storage record 'small/data/0'");
  EXPECT_DATA_ERROR(load_torch_checkpoint(path("no_data_pkl.pt")), path("no_data_pkl.pt"), "data.pkl");
  EXPECT_DATA_ERROR(load_torch_checkpoint(path("quantized.pt")), path("quantized.pt"), "'q'", "unsupported");
}

TEST_F(TensorFiles, GarbageAndTruncatedFilesAreRejected) {
  const std::string garbage = path("garbage.pt");
  write_file(garbage, std::string("this is not a checkpoint at all\n") + std::string(100, '\x17'));
  EXPECT_DATA_ERROR(load_torch_checkpoint(garbage), garbage, "not a zip");
  EXPECT_FALSE(is_zip_file(garbage));
  EXPECT_TRUE(is_zip_file(path("plain.pt")));

  const std::string whole = read_file(path("plain.pt"));
  const std::string cut = path("truncated.pt");
  for (const std::size_t keep : {std::size_t{4}, std::size_t{100}, whole.size() / 2, whole.size() - 30}) {
    SCOPED_TRACE(keep);
    write_file(cut, whole.substr(0, keep));
    EXPECT_DATA_ERROR(load_torch_checkpoint(cut), cut);
  }

  // One flipped byte in a tensor record is caught by the CRC.
  std::string flipped = whole;
  const std::size_t at_data = flipped.find("plain/data/0");
  ASSERT_NE(at_data, std::string::npos);
  const ZipArchive zip(path("plain.pt"));
  const ZipEntry* e = zip.find("plain/data/0");
  ASSERT_NE(e, nullptr);
  ASSERT_GT(e->uncompressed_size, 0u);
  flipped[e->data_offset] ^= 0x40;
  write_file(cut, flipped);
  EXPECT_DATA_ERROR(load_torch_checkpoint(cut), cut, "CRC");

  const Caught missing = catch_error([&] { load_torch_checkpoint(path("does_not_exist.pt")); });
  ASSERT_TRUE(missing.thrown);
  EXPECT_EQ(missing.kind, ErrorKind::IO);
  EXPECT_NE(missing.message.find("does_not_exist.pt"), std::string::npos);
}

TEST_F(TensorFiles, SavedCheckpointLoadsInPythonTorch) {
  StateDict sd = load_torch_checkpoint(path("plain.pt"));
  // Feed the writer a non-contiguous view and a size-1 dim with an odd stride.
  sd["transposed"] = sd.at("base").clone().t();
  ASSERT_FALSE(sd.at("transposed").is_contiguous());
  const std::string out = path("roundtrip.pt");
  save_torch_state_dict(out, sd);
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_TRUE(is_zip_file(out));

  std::string log;
  EXPECT_EQ(python({"check-pt", out, path("plain.manifest")}, &log), 0) << log;
  expect_matches(load_torch_checkpoint(out), path("plain.manifest"));

  // Layout promised to torch's mmap loader: stored, 64-byte aligned records.
  const ZipArchive zip(out);
  ASSERT_NE(zip.find("archive/data.pkl"), nullptr);
  ASSERT_NE(zip.find("archive/version"), nullptr);
  const ZipEntryData v = zip.read(*zip.find("archive/version"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.data), v.size), "3\n");
  for (const ZipEntry& e : zip.entries()) {
    EXPECT_EQ(e.method, 0) << e.name;
    EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  }
}

TEST_F(TensorFiles, PythonCheckRejectsWrongValues) {
  // The round-trip check above must be able to fail: change one value.
  StateDict sd = load_torch_checkpoint(path("plain.pt"));
  sd["f32"] = sd.at("f32").clone();
  sd["f32"].view(-1)[0] = 100.0f;
  const std::string out = path("wrong.pt");
  save_torch_state_dict(out, sd);
  std::string log;
  EXPECT_NE(python({"check-pt", out, path("plain.manifest")}, &log), 0) << log;
  EXPECT_NE(log.find("f32 values differ"), std::string::npos) << log;
}

TEST_F(TensorFiles, SavesEmptyStateDictAndRejectsBadInput) {
  const std::string out = path("empty.pt");
  save_torch_state_dict(out, {});
  EXPECT_TRUE(load_torch_checkpoint(out).empty());
  std::string log;
  write_file(path("empty.manifest"), "");
  // An empty manifest reads as no tensors; Python must see an empty OrderedDict.
  EXPECT_EQ(python({"check-pt", out, path("empty.manifest")}, &log), 0) << log;

  StateDict bad{{"u", at::ones({2}).to_sparse()}};
  EXPECT_DATA_ERROR(save_torch_state_dict(path("bad.pt"), bad), "bad.pt", "'u'", "not dense");
  EXPECT_FALSE(fs::exists(path("bad.pt")));
  const Caught io = catch_error([&] { save_torch_state_dict(path("no_such_dir/x.pt"), {{"a", at::ones({1})}}); });
  ASSERT_TRUE(io.thrown);
  EXPECT_EQ(io.kind, ErrorKind::IO);
  EXPECT_NE(io.message.find("no_such_dir/x.pt"), std::string::npos) << io.message;
}

// ---- ZIP layer ----

TEST_F(TensorFiles, ZipArchiveReadsArchiveWithPrependedData) {
  const ZipArchive plain(path("plain.pt"));
  const ZipArchive prefixed(path("plain_prefixed.zip"));
  ASSERT_EQ(plain.entries().size(), prefixed.entries().size());
  for (const ZipEntry& e : plain.entries()) {
    const ZipEntry* p = prefixed.find(e.name);
    ASSERT_NE(p, nullptr) << e.name;
    const ZipEntryData a = plain.read(e), b = prefixed.read(*p);
    ASSERT_EQ(a.size, b.size) << e.name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.size), 0) << e.name;
    EXPECT_EQ(a.owned, nullptr) << "stored entries are zero-copy";
  }
  const std::string empty = path("empty.zip");
  write_file(empty, "");
  EXPECT_DATA_ERROR(ZipArchive{empty}, empty);
}

// ---- inputs: checked before they are opened ----

TEST(InputFile, PipesDevicesFoldersAndOversizedFilesAreRefusedBeforeOpening) {
  const fs::path dir = fs::temp_directory_path() / ("difffit-input-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string fifo = (dir / "pipe").string(), big = (dir / "big.yaml").string(), ok = (dir / "ok.txt").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  write_file(ok, "a\nbc\n\nlast");
  write_file(big, "");
  fs::resize_file(big, 17 * kMiB);  // sparse: costs no disk
  auto expect_io = [](const std::function<void()>& fn, const std::string& part) {
    const Caught c = catch_error(fn);
    ASSERT_TRUE(c.thrown) << part;
    EXPECT_EQ(c.kind, ErrorKind::IO) << c.message;
    EXPECT_NE(c.message.find(part), std::string::npos) << c.message;
  };
  // Opening the pipe would block for ever: refused from stat alone, by every entry point.
  expect_io([&] { check_input_file(fifo, "a YAML file"); }, fifo + ": is a named pipe (FIFO); expected a YAML file");
  expect_io([&] { read_input_file(fifo, "a YAML file", kConfigFileLimit); }, fifo + ": is a named pipe (FIFO)");
  expect_io([&] { check_input_file_if_present(fifo, "a sweep journal"); }, "expected a sweep journal");
  expect_io([&] { load_safetensors(fifo); }, fifo + ": is a named pipe (FIFO)");
  expect_io([&] { load_torch_checkpoint(fifo); }, fifo + ": is a named pipe (FIFO)");
  expect_io([&] { ZipArchive{fifo}; }, fifo + ": is a named pipe (FIFO)");
  // /dev/zero never ends; a folder is not a file.
  expect_io([&] { read_input_file("/dev/zero", "a YAML file", kConfigFileLimit); },
            "/dev/zero: is a character device; expected a YAML file");
  expect_io([&] { check_input_file(dir.string(), "an HDF5 file"); }, dir.string() + ": is a folder; expected an HDF5 file");
  expect_io([&] { check_input_file((dir / "none").string(), "an HDF5 file"); },
            (dir / "none").string() + ": cannot read an HDF5 file: No such file or directory");
  EXPECT_FALSE(check_input_file_if_present((dir / "none").string(), "a sweep journal"));
  // Size limits are stated in the error.
  expect_io([&] { read_input_file(big, "a YAML file", kConfigFileLimit); },
            big + ": is 17825792 bytes, over the 16 MiB limit for a YAML file");
  EXPECT_EQ(check_input_file(big, "an HDF5 file"), 17 * kMiB);  // no limit for files read in parts
  EXPECT_EQ(read_input_file(ok, "a text file", 100), "a\nbc\n\nlast");
  // In chunks: every byte once, in order; a pipe refused as above.
  std::vector<std::string> chunks;
  read_file_chunks(ok, "a file to hash", [&](const char* data, size_t n) { chunks.emplace_back(data, n); }, 3);
  EXPECT_EQ(chunks, (std::vector<std::string>{"a\nb", "c\n\n", "las", "t"}));
  expect_io([&] { read_file_chunks(fifo, "a file to hash", [](const char*, size_t) {}); },
            fifo + ": is a named pipe (FIFO); expected a file to hash");
  // Lines: std::getline's answers, up to a bound.
  std::ifstream in(ok, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; read_bounded_line(in, line, ok, 4);) lines.push_back(line);
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "bc", "", "last"}));
  std::istringstream long_line("short\n" + std::string(100, 'x') + "\n");
  std::string line;
  EXPECT_TRUE(read_bounded_line(long_line, line, "j.jsonl:1", 64));
  const Caught c = catch_error([&] { read_bounded_line(long_line, line, "j.jsonl:2", 64); });
  EXPECT_EQ(c.kind, ErrorKind::Data);
  EXPECT_NE(c.message.find("j.jsonl:2: a line longer than the 64 bytes limit"), std::string::npos) << c.message;
  fs::remove_all(dir);
}

// A deflated entry is bounded before it is inflated (a few MB can claim gigabytes), and
// inflating stops at the size the header declares when the data hold more.
TEST(ZipLimits, ADeflatedEntryOverTheLimitIsRefusedBeforeInflating) {
  const fs::path dir = fs::temp_directory_path() / ("difffit-zip-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string bomb = (dir / "bomb.pt").string(), liar = (dir / "liar.pt").string();
  // 257 MiB of zeros deflate to about 260 KB; the second entry's header claims 1000 bytes for 1 MiB.
  const std::string script =
      "import struct, sys, zipfile\n"
      "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z: z.writestr('bomb/data.pkl', bytes(257 << 20))\n"
      "with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z: z.writestr('liar/data.pkl', bytes(1 << 20))\n"
      "b = bytearray(open(sys.argv[2], 'rb').read())\n"
      "struct.pack_into('<I', b, b.find(b'PK\\x01\\x02') + 24, 1000)\n"
      "struct.pack_into('<I', b, 22, 1000)\n"
      "open(sys.argv[2], 'wb').write(b)\n";
  std::ofstream(dir / "make.py") << script;
  ASSERT_EQ(std::system((shell_quote(testing::test_python()) + " " + shell_quote((dir / "make.py").string()) + " " +
                         shell_quote(bomb) + " " + shell_quote(liar))
                            .c_str()),
            0);
  const ZipArchive archive(bomb);
  ASSERT_EQ(archive.entries().size(), 1u);
  EXPECT_EQ(archive.entries()[0].uncompressed_size, std::uint64_t{257} << 20);
  const std::string over = "compressed entry 'bomb/data.pkl' declares 269484032 bytes uncompressed, over the limit of "
                           "256 MiB for compressed entries (refused before inflating)";
  EXPECT_DATA_ERROR(archive.read(archive.entries()[0]), bomb + ": " + over);
  EXPECT_DATA_ERROR(load_torch_checkpoint(bomb), bomb + ": " + over);
  const ZipArchive lying(liar);
  EXPECT_DATA_ERROR(lying.read(lying.entries()[0]), liar,
                    "entry 'liar/data.pkl' inflates to more than the 1000 bytes its header declares");
  fs::remove_all(dir);
}

// ---- pickle layer ----

PickleValuePtr dict_get(const PickleValuePtr& d, const std::string& key) {
  EXPECT_TRUE(d && d->is(PickleValue::Kind::Dict));
  PickleValuePtr v = d ? d->get(key) : nullptr;
  EXPECT_NE(v, nullptr) << "missing key " << key;
  return v ? v : PickleValue::make(PickleValue::Kind::None);
}

TEST_F(TensorFiles, PickleReaderDecodesAllProtocols) {
  using K = PickleValue::Kind;
  for (const int proto : {0, 2, 3, 4, 5}) {
    SCOPED_TRACE("protocol " + std::to_string(proto));
    const std::string bytes = read_file(path("values_p" + std::to_string(proto) + ".pkl"));
    const PickleValuePtr root =
        read_pickle(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), "values.pkl");
    ASSERT_TRUE(root->is(K::Dict));
    EXPECT_EQ(root->entries.size(), 25u);
    EXPECT_EQ(dict_get(root, "small")->i, 5);
    EXPECT_EQ(dict_get(root, "neg")->i, -7);
    EXPECT_EQ(dict_get(root, "u16")->i, 40000);
    EXPECT_EQ(dict_get(root, "i32")->i, -100000);
    EXPECT_EQ(dict_get(root, "i64")->i, std::int64_t{1} << 40);
    // 2**70 as minimal little-endian two's complement (LONG1, or decimal text in protocol 0).
    const PickleValuePtr big = dict_get(root, "big"), negbig = dict_get(root, "negbig");
    EXPECT_TRUE(big->is(K::BigInt) && negbig->is(K::BigInt));
    EXPECT_EQ(big->str, std::string("\0\0\0\0\0\0\0\0\x40", 9));
    EXPECT_EQ(negbig->str, std::string("\0\0\0\0\0\0\0\0\xc0", 9));
    EXPECT_TRUE(dict_get(root, "float")->is(K::Float));
    EXPECT_EQ(dict_get(root, "float")->f, 1.5);
    EXPECT_EQ(dict_get(root, "str")->str, "h\xc3\xa9llo \xe2\x98\x83\\\n");
    EXPECT_EQ(dict_get(root, "long_str")->str, std::string(300, 'x'));
    EXPECT_TRUE(dict_get(root, "none")->is(K::None));
    EXPECT_TRUE(dict_get(root, "true")->is(K::Bool) && dict_get(root, "true")->b);
    EXPECT_TRUE(dict_get(root, "false")->is(K::Bool) && !dict_get(root, "false")->b);
    if (proto >= 3) {
      EXPECT_TRUE(dict_get(root, "bytes")->is(K::Bytes));
      EXPECT_EQ(dict_get(root, "bytes")->str, std::string("\0\xff", 2));
    } else {  // bytes pickle as a call to _codecs.encode before protocol 3
      EXPECT_TRUE(dict_get(root, "bytes")->is(K::Object));
    }
    if (proto >= 5) {
      EXPECT_EQ(dict_get(root, "bytearray")->str, "ab");
    }
    const PickleValuePtr list = dict_get(root, "list");
    ASSERT_TRUE(list->is(K::List));
    ASSERT_EQ(list->items.size(), 2u);
    EXPECT_EQ(list->items[1]->items.size(), 2u);
    EXPECT_EQ(list->items[1]->items[1]->i, 3);
    const PickleValuePtr tuple = dict_get(root, "tuple");
    ASSERT_TRUE(tuple->is(K::Tuple));
    ASSERT_EQ(tuple->items.size(), 3u);
    EXPECT_EQ(tuple->items[1]->str, "a");
    EXPECT_TRUE(tuple->items[2]->is(K::None));
    EXPECT_TRUE(dict_get(root, "empty_tuple")->is(K::Tuple));
    if (proto >= 4) {
      EXPECT_TRUE(dict_get(root, "set")->is(K::Set));
    } else {  // builtins.set([3]); protocols 0-2 spell it __builtin__.set
      EXPECT_EQ(dict_get(root, "set")->qualified_name(), "builtins.set");
    }
    // The memo shares one list object between both tuple slots.
    const PickleValuePtr shared = dict_get(root, "shared");
    ASSERT_EQ(shared->items.size(), 2u);
    EXPECT_EQ(shared->items[0].get(), shared->items[1].get());
    const PickleValuePtr od = dict_get(root, "od");
    EXPECT_EQ(od->qualified_name(), "collections.OrderedDict");
    ASSERT_NE(od->get("a"), nullptr);
    EXPECT_EQ(od->get("a")->i, 1);
    EXPECT_TRUE(dict_get(root, "global")->is(K::Global));
    EXPECT_EQ(dict_get(root, "global")->qualified_name(), "collections.OrderedDict");
    const PickleValuePtr ns = dict_get(root, "ns");
    if (proto >= 2) {  // NEWOBJ on the class
      EXPECT_EQ(ns->qualified_name(), "argparse.Namespace");
    } else {  // copyreg._reconstructor(cls, object, None)
      EXPECT_EQ(ns->qualified_name(), "copyreg._reconstructor");
      ASSERT_TRUE(ns->args && ns->args->items.size() == 3);
      EXPECT_EQ(ns->args->items[0]->qualified_name(), "argparse.Namespace");
    }
    ASSERT_NE(ns->state, nullptr);
    ASSERT_NE(ns->state->get("lr"), nullptr);
    EXPECT_EQ(ns->state->get("lr")->f, 0.5);
    // Non-string keys survive in order.
    bool int_key = false, tuple_key = false;
    for (const auto& kv : root->entries) {
      if (kv.first->is(K::Int) && kv.first->i == 42) int_key = kv.second->str == "int key";
      if (kv.first->is(K::Tuple) && kv.first->items.size() == 2) tuple_key = kv.second->str == "tuple key";
    }
    EXPECT_TRUE(int_key);
    EXPECT_TRUE(tuple_key);
  }
}

TEST_F(TensorFiles, PickleReaderErrorsNameOpcodeAndOffset) {
  const std::uint8_t unknown[] = {0x80, 0x02, 0xff, '.'};
  EXPECT_DATA_ERROR(read_pickle(unknown, sizeof unknown, "ctx.pkl"), "ctx.pkl", "opcode 0xff", "offset 2");
  const std::uint8_t truncated[] = {0x80, 0x02, 'X', 5, 0, 0, 0, 'a', 'b'};
  EXPECT_DATA_ERROR(read_pickle(truncated, sizeof truncated, "ctx.pkl"), "ctx.pkl", "truncated", "offset 2");
  const std::uint8_t underflow[] = {0x80, 0x02, 'a', '.'};
  EXPECT_DATA_ERROR(read_pickle(underflow, sizeof underflow, "ctx.pkl"), "stack underflow", "offset 2");
  const std::uint8_t no_stop[] = {0x80, 0x02, 'N'};
  EXPECT_DATA_ERROR(read_pickle(no_stop, sizeof no_stop, "ctx.pkl"), "truncated", "offset 3");
}

TEST_F(TensorFiles, PickleReaderSurvivesDeepNesting) {
  // [[[[...]]]] a million levels deep: building and freeing must not recurse per level.
  const std::size_t depth = 1000000;
  std::vector<std::uint8_t> p = {0x80, 0x02};
  p.insert(p.end(), depth, ']');
  p.insert(p.end(), depth - 1, 'a');
  p.push_back('.');
  PickleValuePtr v = read_pickle(p.data(), p.size(), "deep.pkl");
  std::size_t levels = 1;
  for (const PickleValue* x = v.get(); !x->items.empty(); x = x->items[0].get()) ++levels;
  EXPECT_EQ(levels, depth);
  v.reset();
}

// A legacy (pre-1.6) torch.save file written by hand: the magic number, protocol 1001 and
// system info pickles, {'w': float32 tensor [value], 'extra': <extra>} (`extra`: protocol-2
// opcodes that push one object), the storage keys ['0'] and storage '0'.
std::string legacy_checkpoint(const std::string& extra, float value) {
  auto pickle = [](const std::string& body) { return std::string("\x80\x02", 2) + body + "."; };
  auto str = [](const std::string& s) { return std::string(1, '\x8c') + static_cast<char>(s.size()) + s; };
  std::string out = pickle(std::string("\x8a\x0a", 2) + std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10));
  out += pickle(std::string("M\xe9\x03", 3));  // 1001
  out += pickle("}");
  const std::string pid = "(" + str("storage") + "ctorch\nFloatStorage\n" + str("0") + str("cpu") + "K\x01tQ";
  const std::string tensor = "ctorch._utils\n_rebuild_tensor_v2\n(" + pid + std::string("K\x00K\x01\x85K\x01\x85tR", 10);
  out += pickle("}(" + str("w") + tensor + str("extra") + extra + "u");
  out += pickle("](" + str("0") + "e");
  const std::int64_t numel = 1;
  out.append(reinterpret_cast<const char*>(&numel), 8);
  out.append(reinterpret_cast<const char*>(&value), 4);
  return out;
}

TEST_F(TensorFiles, LegacyObjectsSharedManyTimesAreWalkedOnce) {
  // A list holding the same list twice, nested 30 deep: 2^30 paths through 31 objects.
  std::string shared = "N";
  for (int level = 0; level < 30; ++level) shared += std::string("q\x00" "0](h\x00" "h\x00" "e", 10);
  const std::string file = path("shared_legacy.pt");
  write_file(file, legacy_checkpoint(shared, 2.5f));
  ASSERT_TRUE(is_legacy_torch_file(file));
  const auto begin = std::chrono::steady_clock::now();
  const StateDict sd = load_torch_checkpoint(file);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_LT(seconds, 2.0) << "walked per path, not per object";
  ASSERT_EQ(sd.count("w"), 1u);
  EXPECT_EQ(sd.at("w").item<float>(), 2.5f);
}

TEST_F(TensorFiles, DecimalIntegerLiteralsAreLimitedToPythonsDigits) {
  // 4300 digits (Python's default limit) are read; one more is a data error naming the file.
  auto long_text = [](std::size_t digits) { return "L" + std::string(digits, '7') + "L\n"; };
  const std::string ok = "\x80\x02" + long_text(4300) + ".";
  const PickleValuePtr v = read_pickle(reinterpret_cast<const std::uint8_t*>(ok.data()), ok.size(), "ok.pkl");
  EXPECT_TRUE(v->is(PickleValue::Kind::BigInt));
  const std::string big = "\x80\x02" + long_text(4301) + ".";
  EXPECT_DATA_ERROR(read_pickle(reinterpret_cast<const std::uint8_t*>(big.data()), big.size(), "big.pkl"), "big.pkl",
                    "integer literal of 4301 digits, more than 4300", "offset 2");
  const std::string file = path("long_legacy.pt");
  write_file(file, legacy_checkpoint("I-" + std::string(100000, '9') + "\n", 1.0f));
  EXPECT_DATA_ERROR(load_torch_checkpoint(file), file + ": legacy object: integer literal of 100000 digits");
}

// ---- safetensors ----

TEST_F(TensorFiles, LoadsHandWrittenSafetensorsWithMetadata) {
  TensorFileMetadata meta;
  const StateDict sd = load_safetensors(path("hand.safetensors"), &meta);
  expect_matches(sd, path("plain.manifest"));
  const TensorFileMetadata want{{"format", "pt"}, {"note", "h\xc3\xa9llo \"q\"\n\xe2\x98\x83 \xf0\x9f\x98\x80"}};
  EXPECT_EQ(meta, want);
  EXPECT_TRUE(is_safetensors_file(path("hand.safetensors")));
  EXPECT_FALSE(is_safetensors_file(path("plain.pt")));
  EXPECT_FALSE(is_zip_file(path("hand.safetensors")));
}

TEST_F(TensorFiles, SafetensorsRoundTripAndPythonCheck) {
  StateDict sd = load_torch_checkpoint(path("plain.pt"));
  sd["transposed"] = sd.at("base").clone().t();  // non-contiguous input
  const TensorFileMetadata meta{{"step", "12"}, {"quote\"key", "tab\there \\ back\x01slash \xe2\x98\x83"}};
  const std::string out = path("roundtrip.safetensors");
  save_safetensors(out, sd, meta);
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_TRUE(is_safetensors_file(out));

  TensorFileMetadata back_meta;
  expect_matches(load_safetensors(out, &back_meta), path("plain.manifest"));
  EXPECT_EQ(back_meta, meta);

  std::string log;
  EXPECT_EQ(python({"check-safetensors", out, path("plain.manifest"), "step=12",
                    "quote\"key=tab\there \\ back\x01slash \xe2\x98\x83"},
                   &log),
            0)
      << log;
  EXPECT_NE(python({"check-safetensors", out, path("plain.manifest"), "step=13"}, &log), 0) << "check must be able to fail";

  TensorFileMetadata none;
  save_safetensors(out, {{"a", at::ones({2, 2})}});
  EXPECT_EQ(load_safetensors(out, &none).at("a").sum().item<float>(), 4.0f);
  EXPECT_TRUE(none.empty());
  EXPECT_DATA_ERROR(save_safetensors(out, {{"c", at::ones({1}, at::kComplexFloat)}}), out, "'c'");
}

// A safetensors file from a header string and a data section.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[k] = static_cast<char>((static_cast<std::uint64_t>(header.size()) >> (8 * k)) & 0xFF);
  return out + header + data;
}

// The writer's header is the same bytes as when the shipped model was made, so a rerun of
// its pre-training reproduces models/mini-source.safetensors bit for bit.
TEST_F(TensorFiles, RewritingTheShippedModelGivesTheSameBytes) {
  const std::string shipped = testing::source_dir() + "/models/mini-source.safetensors";
  TensorFileMetadata metadata;
  const StateDict tensors = load_safetensors(shipped, &metadata);
  ASSERT_FALSE(metadata.empty());
  const std::string copy = path("copy.safetensors");
  save_safetensors(copy, tensors, metadata);
  EXPECT_TRUE(read_file(copy) == read_file(shipped));
}

TEST_F(TensorFiles, MalformedSafetensorsNameFileTensorAndField) {
  const std::string f = path("bad.safetensors");
  const std::string eight(8, '\0');
  struct Case {
    std::string header, data;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {R"({"w":{"shape":[2],"data_offsets":[0,8]}})", eight, {"'w'", "dtype"}},
      {R"({"w":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}})", eight, {"'w'", "F8"}},
      {R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight, {"'w'", "shape"}},
      {R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight, {"'w'", "data_offsets"}},
      {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight, {"'w'", "data_offsets"}},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
       eight, {"'b'", "overlaps"}},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight, {"'w'", "gap"}},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight, {"truncated"}},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight, {"trailing"}},
      {R"({"w":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}})", std::string(7, '\0') + "\x02", {"'w'", "BOOL"}},
      {R"({"__metadata__":{"a":1}})", "", {"__metadata__", "'a'"}},
      {R"({"w": [)", "", {"malformed"}},
      {R"({"w":1,"w":2})", "", {"duplicate key 'w'"}},
      {R"([1,2])", "", {"top level"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header);
    write_file(f, safetensors_bytes(c.header, c.data));
    std::vector<std::string> parts = c.parts;
    parts.push_back(f);
    const Caught caught = catch_error([&] { load_safetensors(f); });
    ASSERT_TRUE(caught.thrown);
    EXPECT_EQ(caught.kind, ErrorKind::Data);
    for (const std::string& p : parts) EXPECT_NE(caught.message.find(p), std::string::npos) << caught.message;
  }

  // Truncation and garbage.
  const std::string whole = read_file(path("hand.safetensors"));
  for (const std::size_t keep : {std::size_t{3}, std::size_t{20}, whole.size() - 1}) {
    SCOPED_TRACE(keep);
    write_file(f, whole.substr(0, keep));
    EXPECT_DATA_ERROR(load_safetensors(f), f);
  }
  write_file(f, std::string(64, 'Q'));
  EXPECT_DATA_ERROR(load_safetensors(f), f);
  EXPECT_FALSE(is_safetensors_file(f));
}

}  // namespace
}  // namespace difffit
