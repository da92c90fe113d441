// Tests for datasets/ and common/image_io: Pillow-exact resampling (golden values from
// tests/python/make_image_fixtures.py with Debian's Pillow), image decoding, the
// prepare pipeline (image folder with bad files, determinism, native layouts), the
// mini benchmark, and the training loader (shuffling, sharding, flips, resume).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <yaml-cpp/yaml.h>
#include <zlib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "common/csv.h"
#include "common/error.h"
#include "common/hdf5_tensors.h"
#include "common/image_io.h"
#include "common/sha256.h"
#include "datasets/idx_reader.h"
#include "datasets/image_loader.h"
#include "datasets/mat_reader.h"
#include "datasets/mini_benchmark.h"
#include "datasets/pil_resample.h"
#include "datasets/prepared_writer.h"
#include "datasets/source_listing.h"
#include "test_support.h"

namespace difffit {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

const char* kScript = "make_image_fixtures.py";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

RawImage from_tensor(const at::Tensor& t) { return image_from_tensor(t.contiguous()); }

// A deterministic test picture: smooth gradients plus a little structure.
RawImage test_picture(int64_t w, int64_t h, int64_t c, int seed) {
  RawImage im(w, h, c);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t k = 0; k < c; ++k) {
        im.row(y)[x * c + k] = static_cast<uint8_t>((x * 255 / std::max<int64_t>(1, w - 1) + y * 3 + k * 60 +
                                                     ((x / 4 + y / 4 + seed) % 2) * 40) % 256);
      }
    }
  }
  return im;
}

int64_t count_mismatches(const RawImage& a, const RawImage& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) n += a.pixels[i] != b.pixels[i];
  return n;
}

// ---- hashing and image files ------------------------------------------------------

TEST(Sha256, KnownVectors) {
  auto hex = [](const std::string& s) {
    Sha256 h;
    h.update(s);
    return h.hex_digest();
  };
  EXPECT_EQ(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 pieces;  // a million 'a' fed in uneven pieces
  std::string chunk(999, 'a');
  size_t fed = 0;
  while (fed + chunk.size() <= 1000000) {
    pieces.update(chunk);
    fed += chunk.size();
  }
  pieces.update(std::string(1000000 - fed, 'a'));
  EXPECT_EQ(pieces.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(ImageIo, PngRoundTripsGrayRgbAndDropsAlpha) {
  TempDir dir;
  for (int64_t c : {1, 3, 4}) {
    RawImage im = test_picture(13, 7, c, 1);
    const std::string path = dir.file("im" + std::to_string(c) + ".png");
    write_png(path, image_to_tensor(im));
    RawImage back = read_image_file(path);
    ASSERT_EQ(back.width, 13);
    ASSERT_EQ(back.height, 7);
    ASSERT_EQ(back.channels, c == 4 ? 3 : c);
    for (int64_t i = 0; i < 13 * 7; ++i) {
      for (int64_t k = 0; k < back.channels; ++k) ASSERT_EQ(back.pixels[i * back.channels + k], im.pixels[i * c + k]);
    }
    EXPECT_FALSE(fs::exists(path + ".tmp"));
  }
}

TEST(ImageIo, ConvertChannelsUsesPillowLuma) {
  RawImage rgb(2, 1, 3);
  rgb.pixels = {255, 0, 0, 10, 200, 30};
  RawImage gray = convert_channels(rgb, 1);
  EXPECT_EQ(gray.pixels[0], 76);   // (255*19595 + 0x8000) >> 16
  EXPECT_EQ(gray.pixels[1], 124);  // (10*19595 + 200*38470 + 30*7471 + 0x8000) >> 16
  RawImage back = convert_channels(gray, 3);
  EXPECT_EQ(back.pixels[3], 124);
  EXPECT_EQ(back.pixels[5], 124);
}

// Why decode_image refuses `bytes` ("" when it decodes them).
std::string decode_refusal(const std::string& bytes) {
  try {
    decode_image(bytes, "x");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ImageIo, BadFilesGiveReasons) {
  TempDir dir;
  RawImage im = test_picture(40, 30, 3, 2);
  write_jpeg(dir.file("ok.jpg"), im, 90);
  write_png(dir.file("ok.png"), im);
  const std::string jpeg = read_bytes(dir.file("ok.jpg")), png = read_bytes(dir.file("ok.png"));
  EXPECT_NE(decode_refusal(jpeg.substr(0, jpeg.size() / 2)).find("truncated"), std::string::npos);
  EXPECT_NE(decode_refusal(png.substr(0, png.size() / 2)).find("truncated"), std::string::npos);
  EXPECT_NE(decode_refusal("GIF89a....").find("unsupported format"), std::string::npos);
  std::string broken = png;
  for (size_t i = 40; i < broken.size() - 20; ++i) broken[i] = static_cast<char>(broken[i] ^ 0x5a);
  EXPECT_FALSE(decode_refusal(broken).empty());
  EXPECT_EQ(decode_refusal(jpeg), "");
}

// Pillow's decompression-bomb rule, read from the header: a small file declaring more than
// 178,956,970 pixels is refused before its pixels are allocated (a 400 KB PNG declaring
// 100000 x 100000 took 10 GB). Just under the limit the decoder goes on (and finds too
// little image data).
TEST(ImageIo, ImagesOverThePixelLimitAreRefusedFromTheHeader) {
  TempDir dir;
  const RawImage gray = test_picture(16, 16, 1, 3);
  write_png(dir.file("g.png"), gray);
  write_jpeg(dir.file("g.jpg"), gray, 90);
  const std::string png = read_bytes(dir.file("g.png")), jpeg = read_bytes(dir.file("g.jpg"));
  auto put_be = [](std::string& b, size_t at, uint32_t v, int bytes) {
    for (int k = 0; k < bytes; ++k) b[at + k] = static_cast<char>(v >> (8 * (bytes - 1 - k)));
  };
  auto png_of = [&](uint32_t side) {  // IHDR: width, height at 16 and 20, its CRC at 29
    std::string b = png;
    put_be(b, 16, side, 4);
    put_be(b, 20, side, 4);
    put_be(b, 29, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(b.data() + 12), 17)), 4);
    return b;
  };
  auto jpeg_of = [&](uint32_t side) {  // SOF0: FF C0, length, precision, height, width
    std::string b = jpeg;
    const size_t sof = b.find("\xff\xc0");
    put_be(b, sof + 5, side, 2);
    put_be(b, sof + 7, side, 2);
    return b;
  };
  const std::string over = "13378 x 13378 = 178970884 pixels, over the limit of 178,956,970 (Pillow's "
                           "decompression-bomb limit, twice Image.MAX_IMAGE_PIXELS); refused before decoding";
  EXPECT_EQ(decode_refusal(png_of(13378)), "x: " + over);
  EXPECT_EQ(decode_refusal(jpeg_of(13378)), "x: " + over);
  const std::string under = decode_refusal(png_of(13377));  // decoded: its 16 rows of data are too few
  EXPECT_EQ(under, "x: Not enough image data");
  EXPECT_EQ(decode_refusal(png_of(16)), "");
  EXPECT_EQ(decode_refusal(jpeg_of(16)), "");

  // prepare skips such a file, naming the reason in its report, and keeps the others.
  fs::create_directories(dir.path() / "folder/cat");
  write_png(dir.file("folder/cat/ok.png"), gray);
  std::ofstream(dir.file("folder/cat/bomb.png"), std::ios::binary) << png_of(13378);
  std::ofstream(dir.file("folder/cat/bomb.jpg"), std::ios::binary) << jpeg_of(13378);
  const std::string out = dir.file("out.h5");
  auto r = testing::run_difffit("prepare --source imagefolder --input " + dir.file("folder") + " --output " + out +
                                " --resolution 16 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Hdf5Reader(out).read_int_attribute("num_images"), 1);
  const std::string report = read_bytes(out + ".report.txt");
  EXPECT_NE(report.find("cat/bomb.png\t" + over), std::string::npos) << report;
  EXPECT_NE(report.find("cat/bomb.jpg\t" + over), std::string::npos) << report;
}

TEST(ImageIo, JpegDecodeMatchesPillow) {
  TempDir dir;
  std::vector<std::string> files;
  for (int k = 0; k < 3; ++k) {
    RawImage im = test_picture(31 + 10 * k, 17 + 7 * k, k == 1 ? 1 : 3, k);
    files.push_back(dir.file("p" + std::to_string(k) + ".jpg"));
    write_jpeg(files.back(), im, 70 + 10 * k);
  }
  std::string args = dir.file("decoded.h5");
  for (const auto& f : files) args += " " + f;
  testing::run_python(kScript, "decode " + args);
  Hdf5Reader ref(dir.file("decoded.h5"));
  for (size_t i = 0; i < files.size(); ++i) {
    RawImage ours = convert_channels(read_image_file(files[i]), 3);
    RawImage pillow = from_tensor(ref.read("decoded_" + std::to_string(i), at::kByte, 3));
    EXPECT_EQ(count_mismatches(ours, pillow), 0) << files[i];
  }
}

TEST(ImageIo, PngModesMatchPillowConvertRgb) {
  TempDir dir;
  testing::run_python(kScript, "pngs " + dir.path().string());
  Hdf5Reader expected(dir.file("expected.h5"));
  for (const char* name : {"palette_trns", "la", "rgba", "bit1", "palette"}) {
    RawImage ours = convert_channels(read_image_file(dir.file(std::string(name) + ".png")), 3);
    RawImage pillow = from_tensor(expected.read(std::string("png_") + name, at::kByte, 3));
    EXPECT_EQ(count_mismatches(ours, pillow), 0) << name;
  }
}

// ---- resampling -------------------------------------------------------------------

TEST(PilResample, AdmCenterCropAndResizeMatchPillowExactly) {
  TempDir dir;
  testing::run_python(kScript, "resample " + dir.file("rs.h5"));
  Hdf5Reader ref(dir.file("rs.h5"));
  at::Tensor crops = ref.read("crop_cases", at::kLong, 2);
  ASSERT_GE(crops.size(0), 10);
  for (int64_t k = 0; k < crops.size(0); ++k) {
    const int64_t size = crops[k][3].item<int64_t>();
    RawImage in = from_tensor(ref.read("crop_in_" + std::to_string(k), at::kByte, 3));
    RawImage expected = from_tensor(ref.read("crop_out_" + std::to_string(k), at::kByte, 3));
    RawImage ours = adm_center_crop(in, size);
    EXPECT_EQ(ours.width, size);
    EXPECT_EQ(count_mismatches(ours, expected), 0)
        << "crop case " << k << ": " << in.width << "x" << in.height << "x" << in.channels << " -> " << size;
  }
  at::Tensor resizes = ref.read("resize_cases", at::kLong, 2);
  for (int64_t k = 0; k < resizes.size(0); ++k) {
    RawImage in = from_tensor(ref.read("resize_in_" + std::to_string(k), at::kByte, 3));
    RawImage expected = from_tensor(ref.read("resize_out_" + std::to_string(k), at::kByte, 3));
    const auto filter = resizes[k][5].item<int64_t>() == 0 ? ResampleFilter::Box : ResampleFilter::Bicubic;
    RawImage ours = pil_resize(in, resizes[k][3].item<int64_t>(), resizes[k][4].item<int64_t>(), filter);
    EXPECT_EQ(count_mismatches(ours, expected), 0) << "resize case " << k;
  }
}

TEST(PilResample, PadCenterPlacesTheImageInTheMiddle) {
  RawImage im(28, 28, 1);
  std::fill(im.pixels.begin(), im.pixels.end(), 200);
  RawImage out = pad_center(im, 32);
  EXPECT_EQ(out.row(1)[5], 0);
  EXPECT_EQ(out.row(2)[2], 200);
  EXPECT_EQ(out.row(29)[29], 200);
  EXPECT_EQ(out.row(30)[29], 0);
}

// ---- annotations ------------------------------------------------------------------

// The same contents as level 5 files (scipy.io.savemat) and as v7.3 (HDF5) files.
TEST(MatReader, ReadsNumbersCellsAndStructsOfLevel5AndV73Files) {
  TempDir dir;
  testing::run_python(kScript, "mat " + dir.path().string());
  testing::run_python(kScript, "mat73 " + dir.path().string());
  for (const std::string suffix : {"", "73"}) {
    SCOPED_TRACE("numbers" + suffix + ".mat");
    auto numbers = read_mat_file(dir.file("numbers" + suffix + ".mat"));
    EXPECT_EQ(numbers["labels"].numbers, (std::vector<double>{3, 1, 2, 2, 1}));
    EXPECT_EQ(numbers["labels"].dims, (std::vector<int64_t>{1, 5}));
    EXPECT_EQ(numbers["trnid"].numbers, (std::vector<double>{1, 4}));
    EXPECT_EQ(numbers["valid"].numbers, (std::vector<double>{2}));
    EXPECT_EQ(numbers["tstid"].numbers, (std::vector<double>{3, 5}));
    auto cells = read_mat_file(dir.file("cells" + suffix + ".mat"));
    ASSERT_EQ(cells["class_names"].elements.size(), 3u);
    EXPECT_EQ(cells["class_names"].elements[1].as_string(), "Acura RL Sedan 2012");
    auto annos = read_mat_file(dir.file("struct" + suffix + ".mat"))["annotations"];
    ASSERT_EQ(annos.numel(), 3);
    EXPECT_EQ(annos.field(0, "class").as_scalar(), 3);
    EXPECT_EQ(annos.field(2, "fname").as_string(), "00003.jpg");
    EXPECT_EQ(annos.field(1, "bbox_x1").as_scalar(), 11);
    EXPECT_THROW(annos.field(0, "nope"), Error);
  }
}

// Damaged files (bytes changed at random, seeded; or cut short) are read or refused with a
// data error naming the file: never a crash or a hang.
TEST(MatReader, DamagedFilesAreRefusedNeverACrash) {
  TempDir dir;
  testing::run_python(kScript, "mat " + dir.path().string());
  testing::run_python(kScript, "mat73 " + dir.path().string());
  std::mt19937 rng(7);
  int refused = 0, read = 0;
  for (const char* name : {"struct.mat", "cells.mat", "numbers.mat", "struct73.mat", "cells73.mat"}) {
    const std::string original = testing::read_text_file(dir.file(name));
    const std::string damaged = dir.file(std::string("damaged-") + name);
    for (int k = 0; k < 120; ++k) {
      std::string bytes = original;
      if (k % 10 == 0) {
        bytes.resize(std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng));
      } else {
        for (int flips = 1 + k % 4; flips > 0; --flips)
          bytes[std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng)] = static_cast<char>(rng());
      }
      write_bytes(damaged, bytes);
      try {
        read_mat_file(damaged);
        ++read;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(damaged), std::string::npos) << e.what();
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 100);
  std::cout << "[ damaged .mat files: " << refused << " refused, " << read << " read ]\n";
}

TEST(SourceListing, CsvQuoting) {
  EXPECT_EQ(parse_csv_line("a,\"b,c\",\"d\"\"e\",,f"), (std::vector<std::string>{"a", "b,c", "d\"e", "", "f"}));
}

void touch(const fs::path& p) { write_bytes(p.string(), "x"); }

TEST(SourceListing, NativeLayouts) {
  TempDir dir;
  const fs::path root = dir.path();
  // Food-101
  write_bytes((root / "food/meta/classes.txt").string(), "apple_pie\nbaby_back_ribs\n");
  write_bytes((root / "food/meta/train.txt").string(), "apple_pie/1\nbaby_back_ribs/7\n");
  write_bytes((root / "food/meta/test.txt").string(), "baby_back_ribs/9\n");
  touch(root / "food/images/apple_pie/1.jpg");
  touch(root / "food/images/baby_back_ribs/7.jpg");
  SourceListing food = list_dataset_files("food-101", (root / "food").string(), "train");
  ASSERT_EQ(food.files.size(), 2u);
  EXPECT_EQ(food.files[1].label, 1);
  EXPECT_EQ(food.files[1].name, "images/baby_back_ribs/7.jpg");
  SourceListing food_test = list_dataset_files("food-101", (root / "food").string(), "test");
  EXPECT_EQ(food_test.files.size(), 0u);
  ASSERT_EQ(food_test.missing.size(), 1u);  // named but absent: reported, not fatal
  // CUB-200-2011
  write_bytes((root / "cub/CUB_200_2011/classes.txt").string(), "1 001.Albatross\n2 002.Auklet\n");
  write_bytes((root / "cub/CUB_200_2011/images.txt").string(), "1 001.Albatross/a.jpg\n2 002.Auklet/b.jpg\n10 002.Auklet/c.jpg\n");
  write_bytes((root / "cub/CUB_200_2011/image_class_labels.txt").string(), "1 1\n2 2\n10 2\n");
  write_bytes((root / "cub/CUB_200_2011/train_test_split.txt").string(), "1 1\n2 0\n10 1\n");
  for (const char* f : {"001.Albatross/a.jpg", "002.Auklet/b.jpg", "002.Auklet/c.jpg"}) touch(root / "cub/CUB_200_2011/images" / f);
  SourceListing cub = list_dataset_files("cub-200-2011", (root / "cub").string(), "train");
  ASSERT_EQ(cub.files.size(), 2u);
  EXPECT_EQ(cub.class_names[1], "002.Auklet");
  EXPECT_EQ(cub.files[1].name, "images/002.Auklet/c.jpg");
  EXPECT_EQ(cub.files[1].label, 1);
  // Caltech-101: BACKGROUND_Google is not a class; 30 per class train.
  for (int i = 0; i < 32; ++i) touch(root / "caltech/101_ObjectCategories/accordion" / ("image_" + std::to_string(1000 + i) + ".jpg"));
  touch(root / "caltech/101_ObjectCategories/BACKGROUND_Google/image_0001.jpg");
  touch(root / "caltech/101_ObjectCategories/airplanes/image_0001.jpg");
  SourceListing cal = list_dataset_files("caltech-101", (root / "caltech").string(), "test");
  EXPECT_EQ(cal.class_names, (std::vector<std::string>{"accordion", "airplanes"}));
  ASSERT_EQ(cal.files.size(), 2u);
  EXPECT_EQ(cal.files[0].name, "accordion/image_1030.jpg");
  // ArtBench-10 (ImageFolder split release)
  touch(root / "art/train/baroque/a.jpg");
  touch(root / "art/train/ukiyo_e/b.jpg");
  touch(root / "art/test/baroque/c.jpg");
  SourceListing art = list_dataset_files("artbench-10", (root / "art").string(), "train");
  ASSERT_EQ(art.files.size(), 2u);
  EXPECT_EQ(art.files[1].name, "train/ukiyo_e/b.jpg");
  // SUN397 partitions
  write_bytes((root / "sun/ClassName.txt").string(), "/a/abbey\n/b/bakery/shop\n");
  write_bytes((root / "sun/Partitions/Training_01.txt").string(), "/b/bakery/shop/sun_x.jpg\n/a/abbey/sun_y.jpg\n");
  touch(root / "sun/b/bakery/shop/sun_x.jpg");
  touch(root / "sun/a/abbey/sun_y.jpg");
  SourceListing sun = list_dataset_files("sun397", (root / "sun").string(), "train");
  EXPECT_EQ(sun.class_names[1], "bakery/shop");
  ASSERT_EQ(sun.files.size(), 2u);
  EXPECT_EQ(sun.files[0].label, 1);
  // DF20-Mini CSVs
  write_bytes((root / "df20/DF20M-train_metadata_PROD.csv").string(),
              "id,scientificName,class_id,image_path\n1,\"Amanita muscaria, L.\",1,x.JPG\n2,Boletus edulis,0,y.JPG\n");
  write_bytes((root / "df20/DF20M-public_test_metadata_PROD.csv").string(), "id,scientificName,class_id,image_path\n3,Cortinarius,2,z.JPG\n");
  for (const char* f : {"x.JPG", "y.JPG", "z.JPG"}) touch(root / "df20/DF20M" / f);
  SourceListing df = list_dataset_files("df20-mini", (root / "df20").string(), "train");
  EXPECT_EQ(df.class_names, (std::vector<std::string>{"Boletus edulis", "Amanita muscaria, L.", "Cortinarius"}));
  ASSERT_EQ(df.files.size(), 2u);
  EXPECT_EQ(df.files[0].label, 1);
  // Flowers-102 and Stanford Cars from scipy-written .mat files.
  testing::run_python(kScript, "mat " + (root / "mats").string());
  fs::create_directories(root / "flowers/jpg");
  fs::copy_file(root / "mats/numbers.mat", root / "flowers/imagelabels.mat");
  fs::copy_file(root / "mats/numbers.mat", root / "flowers/setid.mat");
  for (int i = 1; i <= 5; ++i) touch(root / "flowers/jpg" / ("image_0000" + std::to_string(i) + ".jpg"));
  SourceListing fl = list_dataset_files("flowers-102", (root / "flowers").string(), "test");
  ASSERT_EQ(fl.files.size(), 2u);
  EXPECT_EQ(fl.class_names.size(), 3u);
  EXPECT_EQ(fl.files[0].name, "jpg/image_00003.jpg");
  EXPECT_EQ(fl.files[0].label, 1);  // labels[3] = 2 -> 1
  fs::create_directories(root / "cars/devkit");
  fs::copy_file(root / "mats/cells.mat", root / "cars/devkit/cars_meta.mat");
  fs::copy_file(root / "mats/struct.mat", root / "cars/devkit/cars_train_annos.mat");
  for (const char* f : {"00001.jpg", "00002.jpg", "00003.jpg"}) touch(root / "cars/cars_train" / f);
  SourceListing cars = list_dataset_files("stanford-cars", (root / "cars").string(), "train");
  ASSERT_EQ(cars.files.size(), 3u);
  EXPECT_EQ(cars.class_names[2], "Zeta");
  EXPECT_EQ(cars.files[0].label, 2);
  EXPECT_EQ(cars.files[0].name, "cars_train/00001.jpg");
  EXPECT_THROW(list_dataset_files("food-101", (root / "food").string(), "val"), Error);
}

// ---- prepare ----------------------------------------------------------------------

// A tiny image folder: PNG and JPEG of several sizes and modes, plus bad files.
void make_image_folder(const fs::path& root) {
  fs::create_directories(root / "cat");
  fs::create_directories(root / "dog/nested");
  write_png((root / "cat/a.png").string(), test_picture(40, 30, 3, 0));
  write_png((root / "cat/b_gray.png").string(), test_picture(17, 23, 1, 1));
  write_jpeg((root / "cat/c.jpg").string(), test_picture(64, 48, 3, 2), 85);
  write_jpeg((root / "dog/d.jpeg").string(), test_picture(35, 90, 3, 3), 90);
  write_png((root / "dog/nested/e.png").string(), test_picture(8, 8, 3, 4));
  write_jpeg((root / "dog/f_gray.jpg").string(), test_picture(33, 33, 1, 5), 80);
  write_bytes((root / "dog/corrupt.png").string(), std::string("\x89PNG\r\n\x1a\n", 8) + std::string(64, '\x13'));
  write_jpeg((root / "dog/truncated.jpg").string(), test_picture(50, 50, 3, 6), 90);
  std::string t = read_bytes((root / "dog/truncated.jpg").string());
  write_bytes((root / "dog/truncated.jpg").string(), t.substr(0, t.size() * 2 / 3));
  write_bytes((root / "dog/notes.txt").string(), "not an image\n");
}

TEST(Prepare, ImageFolderMatchesPillowAndReportsBadFiles) {
  TempDir dir;
  make_image_folder(dir.path() / "folder");
  const std::string out = dir.file("out/folder.h5");
  auto r = testing::run_difffit("prepare --source imagefolder --input " + dir.file("folder") + " --output " + out +
                                " --resolution 16 --split train");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  Hdf5Reader file(out);
  at::Tensor images = file.read("images", at::kByte, 4);
  at::Tensor labels = file.read("labels", at::kLong, 1);
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{6, 16, 16, 3}));
  EXPECT_EQ(file.read_strings("class_names"), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(file.read_strings("source_files"),
            (std::vector<std::string>{"cat/a.png", "cat/b_gray.png", "cat/c.jpg", "dog/d.jpeg", "dog/f_gray.jpg",
                                      "dog/nested/e.png"}));
  EXPECT_EQ(std::vector<int64_t>(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + 6),
            (std::vector<int64_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(file.read_int_attribute("resolution"), 16);
  EXPECT_EQ(file.read_int_attribute("channels"), 3);
  EXPECT_EQ(file.read_int_attribute("num_classes"), 2);
  EXPECT_EQ(file.read_int_attribute("num_skipped"), 3);
  EXPECT_EQ(file.read_string_attribute("crop"), "adm-center");
  EXPECT_EQ(file.read_string_attribute("source"), "imagefolder");
  EXPECT_EQ(file.read_string_attribute("split"), "train");
  // The report names each bad file with its reason.
  const std::string report = read_bytes(out + ".report.txt");
  EXPECT_NE(report.find("dog/corrupt.png\t"), std::string::npos) << report;
  EXPECT_NE(report.find("dog/truncated.jpg\ttruncated"), std::string::npos) << report;
  EXPECT_NE(report.find("dog/notes.txt\tunsupported format"), std::string::npos) << report;
  // Pixels equal what DiT's pipeline (PIL open, convert RGB, center_crop_arr) makes.
  testing::run_python(kScript, "folder " + dir.file("folder") + " 16 " + dir.file("ref.h5"));
  Hdf5Reader ref(dir.file("ref.h5"));
  EXPECT_TRUE(at::equal(images, ref.read("images", at::kByte, 4)));
  EXPECT_TRUE(at::equal(labels, ref.read("labels", at::kLong, 1)));
  // The content hash is SHA-256 over images then labels bytes, as Python computes it.
  std::string hash = testing::run_python(kScript, "hash " + out);
  while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r')) hash.pop_back();
  EXPECT_EQ(file.read_string_attribute("content_hash"), hash);
}

TEST(Prepare, IsDeterministicByteForByte) {
  TempDir dir;
  make_image_folder(dir.path() / "folder");
  std::vector<std::string> outs = {dir.file("one.h5"), dir.file("two.h5")};
  for (size_t i = 0; i < outs.size(); ++i) {
    auto r = testing::run_difffit("prepare --source imagefolder --input " + dir.file("folder") + " --output " +
                                  outs[i] + " --resolution 12 --threads " + std::to_string(i + 1));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  EXPECT_EQ(Hdf5Reader(outs[0]).read_string_attribute("content_hash"),
            Hdf5Reader(outs[1]).read_string_attribute("content_hash"));
  EXPECT_EQ(read_bytes(outs[0]), read_bytes(outs[1]));  // whole files, not only the hash
  // A different resolution must change the hash.
  auto r = testing::run_difffit("prepare --source imagefolder --input " + dir.file("folder") + " --output " +
                                dir.file("three.h5") + " --resolution 13");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(Hdf5Reader(outs[0]).read_string_attribute("content_hash"),
            Hdf5Reader(dir.file("three.h5")).read_string_attribute("content_hash"));
}

TEST(Prepare, NoUsableImagesLeavesNoFile) {
  TempDir dir;
  write_bytes(dir.file("bad/only/x.png"), "garbage");
  const std::string out = dir.file("bad.h5");
  auto r = testing::run_difffit("prepare --source imagefolder --input " + dir.file("bad") + " --output " + out +
                                " --resolution 8");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_FALSE(fs::exists(out + ".report.txt"));
  EXPECT_EQ(testing::run_difffit("prepare --source nope --input x --output y").exit_code, 2);
  // A class folder without files is refused by name, as torchvision's ImageFolder does.
  make_image_folder(dir.path() / "holed");
  fs::create_directories(dir.path() / "holed" / "zzz-empty");
  auto holed = testing::run_difffit("prepare --source imagefolder --input " + dir.file("holed") + " --output " +
                                    dir.file("holed.h5") + " --resolution 8");
  EXPECT_EQ(holed.exit_code, 3) << holed.output;
  EXPECT_NE(holed.output.find("zzz-empty: class folder without files"), std::string::npos) << holed.output;
  EXPECT_FALSE(fs::exists(dir.file("holed.h5")));
}

TEST(Prepare, FashionMnistPadsTheIdxImages) {
  if (!fashion_mnist_available("test")) GTEST_SKIP() << "Fashion-MNIST's test split is not installed";
  TempDir dir;
  const std::string out = dir.file("fm.h5");
  auto r = testing::run_difffit("prepare --source fashion-mnist --split test --resolution 32 --fit pad-center "
                                "--limit 50 --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  FashionMnistSplit raw = read_fashion_mnist(default_fashion_mnist_folder(), "test");
  Hdf5Reader file(out);
  at::Tensor images = file.read("images", at::kByte, 4);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{50, 32, 32, 1}));
  EXPECT_EQ(file.read_string_attribute("crop"), "pad-center");
  EXPECT_EQ(file.read_strings("class_names").at(9), "Ankle boot");
  at::Tensor labels = file.read("labels", at::kLong, 1);
  for (int64_t i : {0, 17, 49}) {
    EXPECT_EQ(labels[i].item<int64_t>(), raw.labels[i]);
    for (int64_t y = 0; y < 28; ++y) {
      for (int64_t x = 0; x < 28; ++x) {
        ASSERT_EQ(images[i][y + 2][x + 2][0].item<int>(), raw.images.image(i)[y * 28 + x]);
      }
    }
    EXPECT_EQ(images[i][0][0][0].item<int>(), 0);
  }
}

// ---- the mini benchmark -----------------------------------------------------------

TEST(MiniBenchmark, TasksSplitsClassesAndShifts) {
  if (!fashion_mnist_available("train")) GTEST_SKIP() << "Fashion-MNIST's train split is not installed";
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  auto r = testing::run_difffit("prepare --benchmark mini --output " + dir.file("mini"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::cout << "[ mini benchmark built in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s ]\n";
  YAML::Node yaml = YAML::LoadFile(dir.file("mini/benchmark.yaml"));
  ASSERT_EQ(yaml["tasks"].size(), 8u);
  ASSERT_EQ(yaml["transfer"].size(), 1u);
  EXPECT_EQ(yaml["source"]["name"].as<std::string>(), "source");
  struct Expect {
    int64_t classes, train, ref, per_class_train;
  };
  const std::map<std::string, Expect> expected = {
      {"source", {5, 30000, 5000, 6000}},   {"new-classes", {5, 30000, 5000, 6000}},
      {"inverted", {10, 30000, 10000, 3000}}, {"rotated", {10, 30000, 10000, 3000}},
      {"edges", {10, 30000, 10000, 3000}},  {"low-data", {10, 500, 10000, 50}},
      {"flipped", {10, 30000, 10000, 3000}}, {"degraded", {10, 30000, 10000, 3000}},
      {"mixed", {5, 30000, 5000, 6000}},    {"source-2x", {5, 30000, 5000, 6000}}};
  std::vector<YAML::Node> nodes = {yaml["source"]};
  for (const auto& t : yaml["tasks"]) nodes.push_back(t);
  nodes.push_back(yaml["transfer"][0]);
  std::set<std::string> hashes;
  for (const auto& node : nodes) {
    const std::string name = node["name"].as<std::string>();
    ASSERT_TRUE(expected.count(name)) << name;
    const Expect& e = expected.at(name);
    EXPECT_EQ(node["num_classes"].as<int64_t>(), e.classes) << name;
    EXPECT_FALSE(node["description"].as<std::string>().empty());
    Hdf5Reader train(dir.file("mini/" + node["train"].as<std::string>()));
    Hdf5Reader ref(dir.file("mini/" + node["ref"].as<std::string>()));
    const int64_t side = name == "source-2x" ? 64 : 32;
    EXPECT_EQ(node["resolution"].as<int64_t>(), side) << name;
    EXPECT_EQ(train.shape("images"), (std::vector<int64_t>{e.train, side, side, 1})) << name;
    EXPECT_EQ(ref.shape("images"), (std::vector<int64_t>{e.ref, side, side, 1})) << name;
    EXPECT_EQ(train.read_int_attribute("num_classes"), e.classes);
    EXPECT_EQ(train.read_string_attribute("split"), "train");
    EXPECT_EQ(ref.read_string_attribute("split"), "ref");
    at::Tensor counts = at::bincount(train.read("labels", at::kLong, 1), {}, e.classes);
    EXPECT_TRUE(at::equal(counts, at::full({e.classes}, e.per_class_train, at::kLong))) << name << counts;
    at::Tensor ref_counts = at::bincount(ref.read("labels", at::kLong, 1), {}, e.classes);
    EXPECT_TRUE(at::equal(ref_counts, at::full({e.classes}, 1000, at::kLong))) << name;
    hashes.insert(node["train_hash"].as<std::string>());
    EXPECT_EQ(node["train_hash"].as<std::string>(), train.read_string_attribute("content_hash"));
  }
  EXPECT_EQ(hashes.size(), 10u);  // every train split differs
  // source-2x is source enlarged 2x by Pillow's BICUBIC, image for image, labels unchanged.
  for (const char* split : {"train", "ref"}) {
    const std::string small = dir.file(std::string("mini/source/") + split + ".h5");
    const std::string pillow = dir.file(std::string("enlarged-") + split + ".h5");
    testing::run_python(kScript, "enlarge " + small + " 40 64 " + pillow);
    Hdf5Reader big(dir.file(std::string("mini/source-2x/") + split + ".h5"));
    EXPECT_TRUE(at::equal(big.read_rows("images", at::kByte, 0, 40), Hdf5Reader(pillow).read("images", at::kByte, 4))) << split;
    EXPECT_TRUE(at::equal(big.read("labels", at::kLong, 1), Hdf5Reader(small).read("labels", at::kLong, 1))) << split;
  }
  // The shifts, checked on the first images against the padded originals.
  FashionMnistSplit raw = read_fashion_mnist(default_fashion_mnist_folder(), "train");
  auto padded = [&](int64_t i) {
    RawImage im(28, 28, 1);
    std::copy_n(raw.images.image(i), 784, im.pixels.data());
    return pad_center(im, 32);
  };
  auto task_image = [&](const std::string& task, int64_t row) {
    return from_tensor(Hdf5Reader(dir.file("mini/" + task + "/train.h5")).read_rows("images", at::kByte, row, 1)[0]);
  };
  for (int64_t i : {0, 1, 123}) {
    RawImage p = padded(i);
    RawImage inv = task_image("inverted", i), rot = task_image("rotated", i), flip = task_image("flipped", i);
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) {
        ASSERT_EQ(inv.row(y)[x], 255 - p.row(y)[x]);
        ASSERT_EQ(rot.row(y)[x], p.row(31 - x)[y]);  // clockwise
        ASSERT_EQ(flip.row(y)[x], p.row(31 - y)[x]);
      }
    }
    RawImage edges = task_image("edges", i);
    EXPECT_EQ(edges.row(0)[0], 0);  // flat black border
    EXPECT_GT(*std::max_element(edges.pixels.begin(), edges.pixels.end()), 50);
  }
  // new-classes starts with the first training image of classes 5-9, relabelled.
  int64_t first_new = 0;
  while (raw.labels[first_new] < 5) ++first_new;
  Hdf5Reader nc(dir.file("mini/new-classes/train.h5"));
  EXPECT_EQ(nc.read("labels", at::kLong, 1)[0].item<int64_t>(), raw.labels[first_new] - 5);
  EXPECT_EQ(count_mismatches(task_image("new-classes", 0), padded(first_new)), 0);
  // degraded keeps the picture but not the pixels: mean absolute change is moderate.
  RawImage deg = task_image("degraded", 0), p0 = padded(0);
  double diff = 0;
  for (size_t k = 0; k < deg.pixels.size(); ++k) diff += std::abs(int(deg.pixels[k]) - int(p0.pixels[k]));
  diff /= deg.pixels.size();
  EXPECT_GT(diff, 5);
  EXPECT_LT(diff, 90);
}

// ---- the loader -------------------------------------------------------------------

// N random images of 6x6x3 with labels i % 4.
std::string make_loader_file(const TempDir& dir, int64_t n) {
  PreparedMeta meta;
  meta.source = "synthetic";
  meta.split = "train";
  meta.resolution = 6;
  meta.channels = 3;
  meta.class_names = {"a", "b", "c", "d"};
  const std::string path = dir.file("loader.h5");
  PreparedWriter writer(path, meta);
  uint64_t state = 7;
  for (int64_t i = 0; i < n; ++i) {
    RawImage im(6, 6, 3);
    for (auto& v : im.pixels) v = static_cast<uint8_t>((state = state * 6364136223846793005ull + 1442695040888963407ull) >> 56);
    im.pixels[0] = 0;
    im.pixels[1] = 255;
    writer.add(im, i % 4, "s" + std::to_string(i));
  }
  writer.finish();
  return path;
}

LoaderOptions loader_options(const std::string& path, int64_t batch) {
  LoaderOptions o;
  o.path = path;
  o.batch_size = batch;
  o.seed = 42;
  return o;
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

TEST(ImageLoader, EachEpochCoversEveryImageOnceInANewOrder) {
  TempDir dir;
  const std::string path = make_loader_file(dir, 103);
  LoaderOptions o = loader_options(path, 10);
  o.drop_last = false;
  ImageBatchLoader loader(o);
  EXPECT_EQ(loader.num_images(), 103);
  EXPECT_EQ(loader.num_classes(), 4);
  EXPECT_EQ(loader.channels(), 3);
  EXPECT_EQ(loader.resolution(), 6);
  ASSERT_EQ(loader.batches_per_epoch(), 11);
  std::vector<std::vector<int64_t>> epochs(3);
  for (int e = 0; e < 3; ++e) {
    for (int b = 0; b < 11; ++b) {
      EXPECT_EQ(loader.cursor().epoch, e);
      EXPECT_EQ(loader.cursor().batch, b);
      ImageBatch batch = loader.next();
      EXPECT_EQ(batch.images.sizes(), (std::vector<int64_t>{b == 10 ? 3 : 10, 3, 6, 6}));
      for (int64_t i = 0; i < batch.labels.size(0); ++i) {
        EXPECT_EQ(batch.labels[i].item<int64_t>(), batch.indices[i].item<int64_t>() % 4);
      }
      auto idx = to_vector(batch.indices);
      epochs[e].insert(epochs[e].end(), idx.begin(), idx.end());
    }
    std::vector<int64_t> sorted = epochs[e];
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(103);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(sorted, all) << "epoch " << e;
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  // Same seed, same stream; another seed, another order.
  ImageBatchLoader again(o);
  EXPECT_EQ(to_vector(again.next().indices), std::vector<int64_t>(epochs[0].begin(), epochs[0].begin() + 10));
  o.seed = 43;
  ImageBatchLoader other(o);
  EXPECT_NE(to_vector(other.next().indices), std::vector<int64_t>(epochs[0].begin(), epochs[0].begin() + 10));
}

TEST(ImageLoader, ScalesToMinusOneOneAndFlipsHalfTheImages) {
  TempDir dir;
  const std::string path = make_loader_file(dir, 64);
  Hdf5Reader file(path);
  at::Tensor raw = file.read("images", at::kByte, 4);
  LoaderOptions o = loader_options(path, 16);
  ImageBatchLoader loader(o);
  int64_t flips = 0, total = 0;
  for (int step = 0; step < 12; ++step) {
    const int64_t epoch = loader.cursor().epoch;
    ImageBatch batch = loader.next();
    for (int64_t i = 0; i < batch.images.size(0); ++i) {
      const int64_t index = batch.indices[i].item<int64_t>();
      at::Tensor expected = raw[index].permute({2, 0, 1}).to(at::kFloat).div(255.0f).sub(0.5f).div(0.5f);
      const bool flipped = loader.flipped(epoch, index);
      if (flipped) expected = expected.flip({2});
      EXPECT_TRUE(at::equal(batch.images[i], expected)) << "image " << index;
      flips += flipped;
      ++total;
    }
    EXPECT_EQ(batch.images.min().item<float>(), -1.0f);
    EXPECT_EQ(batch.images.max().item<float>(), 1.0f);
  }
  EXPECT_GT(flips, total * 3 / 10);
  EXPECT_LT(flips, total * 7 / 10);
  o.random_flip = false;
  ImageBatchLoader plain(o);
  for (int64_t index = 0; index < 64; ++index) EXPECT_FALSE(plain.flipped(0, index));
}

TEST(ImageLoader, RanksPartitionEachEpoch) {
  TempDir dir;
  const std::string path = make_loader_file(dir, 103);
  for (bool drop_last : {true, false}) {
    std::vector<int64_t> seen;
    for (int rank = 0; rank < 3; ++rank) {
      LoaderOptions o = loader_options(path, 5);
      o.rank = rank;
      o.world_size = 3;
      o.drop_last = drop_last;
      ImageBatchLoader loader(o);
      if (drop_last) {
        EXPECT_EQ(loader.batches_per_epoch(), 6);  // floor(103 / 3) = 34 -> 6 full batches
      }
      std::vector<int64_t> mine;
      for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
        auto idx = to_vector(loader.next().indices);
        mine.insert(mine.end(), idx.begin(), idx.end());
      }
      EXPECT_EQ(mine, loader.epoch_indices(0));
      EXPECT_EQ(loader.cursor().epoch, 1);
      seen.insert(seen.end(), mine.begin(), mine.end());
    }
    std::set<int64_t> unique(seen.begin(), seen.end());
    EXPECT_EQ(unique.size(), seen.size()) << "ranks overlap";
    EXPECT_EQ(static_cast<int64_t>(seen.size()), drop_last ? 90 : 103);
  }
}

TEST(ImageLoader, SeekReproducesTheStreamBitForBit) {
  TempDir dir;
  const std::string path = make_loader_file(dir, 50);
  for (int prefetch : {0, 3}) {
    LoaderOptions o = loader_options(path, 8);  // 6 batches per epoch
    o.prefetch_batches = prefetch;
    ImageBatchLoader a(o);
    for (int i = 0; i < 4; ++i) a.next();
    LoaderCursor saved = a.cursor();
    std::vector<ImageBatch> expected;
    for (int i = 0; i < 7; ++i) expected.push_back(a.next());  // crosses into epoch 1
    EXPECT_EQ(a.cursor().epoch, 1);
    ImageBatchLoader b(o);
    b.next();
    b.seek(saved);
    EXPECT_EQ(b.cursor().epoch, saved.epoch);
    EXPECT_EQ(b.cursor().batch, saved.batch);
    for (const auto& e : expected) {
      ImageBatch got = b.next();
      EXPECT_TRUE(at::equal(got.images, e.images));
      EXPECT_TRUE(at::equal(got.labels, e.labels));
    }
    // Seeking back also works on the same loader.
    a.seek({0, 0});
    ImageBatchLoader c(o);
    EXPECT_TRUE(at::equal(a.next().images, c.next().images));
  }
}

TEST(ImageLoader, PrefetchAndDiskReadsGiveTheSameStream) {
  TempDir dir;
  const std::string path = make_loader_file(dir, 40);
  LoaderOptions sync = loader_options(path, 7);
  sync.prefetch_batches = 0;
  LoaderOptions disk = sync;
  disk.prefetch_batches = 2;
  disk.max_memory_bytes = 0;
  ImageBatchLoader a(sync), b(disk);
  EXPECT_TRUE(a.in_memory());
  EXPECT_FALSE(b.in_memory());
  for (int i = 0; i < 15; ++i) {
    ImageBatch x = a.next(), y = b.next();
    ASSERT_TRUE(at::equal(x.images, y.images)) << "batch " << i;
    ASSERT_TRUE(at::equal(x.indices, y.indices));
  }
}

TEST(ImageLoader, RejectsBadOptions) {
  TempDir dir;
  const std::string path = make_loader_file(dir, 10);
  LoaderOptions o = loader_options(path, 11);
  EXPECT_THROW(ImageBatchLoader{o}, Error);  // no full batch
  o.batch_size = 2;
  o.rank = 2;
  o.world_size = 2;
  EXPECT_THROW(ImageBatchLoader{o}, Error);
  o.rank = 0;
  ImageBatchLoader ok(o);
  EXPECT_THROW(ok.seek({0, 99}), Error);
}

// Files a training run may be pointed at by mistake or malice: each is refused with the file
// and dataset named (exit code 3), never a crash or the machine's memory.
TEST(ImageLoader, RefusesHostileFilesByName) {
  TempDir dir;
  auto refused = [&](const std::string& path, const std::string& words) {
    try {
      ImageBatchLoader{loader_options(path, 2)};
      ADD_FAILURE() << path << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 3) << e.what();
      EXPECT_NE(std::string(e.what()).find(path + ": " + words), std::string::npos) << e.what();
    }
  };
  auto labelled = [&](const std::string& name, const at::Tensor& images) {
    const std::string path = dir.file(name);
    Hdf5Writer out(path);
    out.write("images", images);
    out.write("labels", at::zeros({images.size(0)}, at::kLong));
    out.write_int_attribute("num_classes", 10);
    out.commit();
    return path;
  };
  refused(labelled("empty-images.h5", at::zeros({8, 0, 0, 1}, at::kByte)), "'images' holds empty rows");
  refused(labelled("int64-pixels.h5", at::full({8, 4, 4, 1}, -5, at::kLong)), "dataset 'images' must be uint8");
  {  // a file of a later format is not guessed at
    const std::string later = dir.file("format-2.h5");
    Hdf5Writer out(later);
    out.write("images", at::zeros({8, 4, 4, 1}, at::kByte));
    out.write("labels", at::zeros({8}, at::kLong));
    out.write_int_attribute("num_classes", 10);
    out.write_int_attribute("format_version", 2);
    out.commit();
    refused(later, "format_version 2; this difffit reads format 1");
  }
  // 10^12 images declared in a chunked dataset that stores none of them.
  const std::string huge = dir.file("huge.h5");
  {
    const hid_t file = H5Fcreate(huge.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[4] = {1000000000000ULL, 16, 16, 1}, chunk[4] = {1, 16, 16, 1};
    const hsize_t label_dims[1] = {1000000000000ULL}, label_chunk[1] = {1024};
    const hid_t space = H5Screate_simple(4, dims, nullptr), label_space = H5Screate_simple(1, label_dims, nullptr);
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE), label_plist = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(plist, 4, chunk);
    H5Pset_chunk(label_plist, 1, label_chunk);
    H5Dclose(H5Dcreate2(file, "images", H5T_NATIVE_UINT8, space, H5P_DEFAULT, plist, H5P_DEFAULT));
    H5Dclose(H5Dcreate2(file, "labels", H5T_NATIVE_INT64, label_space, H5P_DEFAULT, label_plist, H5P_DEFAULT));
    for (hid_t id : {plist, label_plist}) H5Pclose(id);
    for (hid_t id : {space, label_space}) H5Sclose(id);
    H5Fclose(file);
  }
  refused(huge, "dataset 'labels': 8000 GB declared, more than this machine's");
}

}  // namespace
}  // namespace difffit
