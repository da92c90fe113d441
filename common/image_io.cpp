#include "common/image_io.h"

#include <ATen/ATen.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"

namespace difffit {
namespace {

// False, with the reason in `message`, for an image over kMaxImagePixels. A char buffer,
// not a string: the decoders below return by longjmp.
static_assert(kMaxImagePixels == 178956970, "the message below states the limit");
bool within_pixel_limit(std::uint64_t width, std::uint64_t height, char* message, std::size_t size) {
  const std::uint64_t pixels = width * height;  // each side < 2^32: no overflow
  if (pixels <= static_cast<std::uint64_t>(kMaxImagePixels)) return true;
  std::snprintf(message, size,
                "%llu x %llu = %llu pixels, over the limit of 178,956,970 (Pillow's decompression-bomb limit, "
                "twice Image.MAX_IMAGE_PIXELS); refused before decoding",
                static_cast<unsigned long long>(width), static_cast<unsigned long long>(height),
                static_cast<unsigned long long>(pixels));
  return false;
}

// ---- PNG -------------------------------------------------------------------------

struct PngReadState {
  const std::string* bytes = nullptr;
  size_t offset = 0;
  std::string error;  // set before longjmp
  char message[256] = {};
};

void png_read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* state = static_cast<PngReadState*>(png_get_io_ptr(png));
  if (state->offset + length > state->bytes->size()) {
    state->error = "truncated (file ends inside the image data)";
    png_longjmp(png, 1);
  }
  std::memcpy(out, state->bytes->data() + state->offset, length);
  state->offset += length;
}

void png_error_handler(png_structp png, png_const_charp message) {
  // The state is reachable through the io pointer for reads and the error pointer for writes.
  if (auto* text = static_cast<std::string*>(png_get_error_ptr(png))) {
    if (text->empty()) *text = message;
  }
  png_longjmp(png, 1);
}

void png_warning_handler(png_structp, png_const_charp) {}  // Pillow ignores ancillary problems too

// The decode itself lives in a function with only trivially destructible locals,
// because libpng reports errors by longjmp.
bool decode_png_into(const std::string& bytes, RawImage& image, std::string& error) {
  PngReadState state;
  state.bytes = &bytes;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, png_error_handler, png_warning_handler);
  if (!png) {
    error = "libpng: out of memory";
    return false;
  }
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep>* rows = new std::vector<png_bytep>();
  volatile bool ok = false;  // volatile: set after setjmp
  if (info && setjmp(png_jmpbuf(png)) == 0) {
    png_set_read_fn(png, &state, png_read_from_memory);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (!within_pixel_limit(width, height, state.message, sizeof state.message)) {
      error = state.message;
      png_longjmp(png, 1);
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);  // keep the high byte, as Pillow's "RGB;16B"
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    // convert("RGB") drops alpha, including the alpha a tRNS chunk turns into on expansion.
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int channels = png_get_channels(png, info);
    if ((channels != 1 && channels != 3) || width == 0 || height == 0) {
      error = "unsupported PNG layout";
    } else {
      image = RawImage(width, height, channels);
      rows->resize(height);
      for (png_uint_32 y = 0; y < height; ++y) (*rows)[y] = image.row(y);
      png_read_image(png, rows->data());
      png_read_end(png, nullptr);
      ok = true;
    }
  } else if (!state.error.empty()) {
    error = state.error;
  }
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  delete rows;
  if (!ok && error.empty()) error = "corrupt PNG";
  return ok;
}

// ---- JPEG ------------------------------------------------------------------------

struct JpegErrorState {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_error_exit(j_common_ptr info) {
  auto* state = reinterpret_cast<JpegErrorState*>(info->err);
  (*info->err->format_message)(info, state->message);
  std::longjmp(state->jump, 1);
}

void jpeg_emit_message(j_common_ptr info, int level) {
  auto* state = reinterpret_cast<JpegErrorState*>(info->err);
  // A premature end of data is a truncated file: Pillow refuses those by default.
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) state->truncated = true;
}

bool decode_jpeg_into(const std::string& bytes, RawImage& image, std::string& error) {
  jpeg_decompress_struct cinfo;
  JpegErrorState err_state;
  cinfo.err = jpeg_std_error(&err_state.base);
  err_state.base.error_exit = jpeg_error_exit;
  err_state.base.emit_message = jpeg_emit_message;
  err_state.truncated = false;
  err_state.message[0] = 0;
  std::vector<JSAMPROW>* rows = new std::vector<JSAMPROW>();
  volatile bool ok = false;  // volatile: set after setjmp
  if (setjmp(err_state.jump) == 0) {
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    jpeg_read_header(&cinfo, TRUE);
    if (!within_pixel_limit(cinfo.image_width, cinfo.image_height, err_state.message, sizeof err_state.message)) {
      // the reason is in err_state.message
    } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
      std::snprintf(err_state.message, sizeof(err_state.message), "unsupported JPEG color space (CMYK)");
    } else {
      // libjpeg-turbo's defaults (islow DCT, fancy upsampling) are Pillow's defaults.
      cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
      jpeg_start_decompress(&cinfo);
      image = RawImage(cinfo.output_width, cinfo.output_height, cinfo.output_components);
      while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = image.row(cinfo.output_scanline);
        jpeg_read_scanlines(&cinfo, &row, 1);
      }
      jpeg_finish_decompress(&cinfo);
      ok = !err_state.truncated;
      if (!ok) std::snprintf(err_state.message, sizeof(err_state.message), "truncated (premature end of JPEG data)");
    }
  }
  jpeg_destroy_decompress(&cinfo);
  delete rows;
  if (!ok) error = err_state.message[0] ? err_state.message : "corrupt JPEG";
  return ok;
}


bool encode_png_file(const RawImage& image, std::FILE* file, std::string& error) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, png_error_handler, png_warning_handler);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  volatile bool ok = false;  // volatile: set after setjmp
  if (info && setjmp(png_jmpbuf(png)) == 0) {
    png_init_io(png, file);
    const int color = image.channels == 1 ? PNG_COLOR_TYPE_GRAY
                      : image.channels == 3 ? PNG_COLOR_TYPE_RGB
                                            : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(png, info, image.width, image.height, 8, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int64_t y = 0; y < image.height; ++y) png_write_row(png, const_cast<png_bytep>(image.row(y)));
    png_write_end(png, nullptr);
    ok = true;
  }
  png_destroy_write_struct(&png, info ? &info : nullptr);
  return ok;
}

bool encode_jpeg_file(const RawImage& image, std::FILE* file, int quality, std::string& error) {
  jpeg_compress_struct cinfo;
  JpegErrorState err_state;
  cinfo.err = jpeg_std_error(&err_state.base);
  err_state.base.error_exit = jpeg_error_exit;
  err_state.message[0] = 0;
  volatile bool ok = false;  // volatile: set after setjmp
  if (setjmp(err_state.jump) == 0) {
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, file);
    cinfo.image_width = image.width;
    cinfo.image_height = image.height;
    cinfo.input_components = int(image.channels);
    cinfo.in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
      JSAMPROW row = const_cast<JSAMPROW>(image.row(cinfo.next_scanline));
      jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    ok = true;
  } else {
    error = err_state.message;
  }
  jpeg_destroy_compress(&cinfo);
  return ok;
}

template <typename Encode>
void write_atomically(const std::string& path, Encode encode) {
  const std::string tmp = temporary_path_for(path);
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (!file) throw_io(tmp + ": cannot create");
  std::string error;
  bool ok = encode(file, error);
  ok = (std::fclose(file) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw_io(path + ": encoding failed" + (error.empty() ? "" : " (" + error + ")"));
  }
  commit_file(tmp, path);
}

}  // namespace

ImageFormat sniff_image_format(const std::string& bytes) {
  static const unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) return ImageFormat::Png;
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xff &&
      static_cast<unsigned char>(bytes[1]) == 0xd8 && static_cast<unsigned char>(bytes[2]) == 0xff) {
    return ImageFormat::Jpeg;
  }
  return ImageFormat::Unknown;
}

RawImage decode_image(const std::string& bytes, const std::string& name) {
  RawImage image;
  std::string error;
  switch (sniff_image_format(bytes)) {
    case ImageFormat::Png:
      if (!decode_png_into(bytes, image, error)) throw_data(name + ": " + error);
      break;
    case ImageFormat::Jpeg:
      if (!decode_jpeg_into(bytes, image, error)) throw_data(name + ": " + error);
      break;
    default:
      throw_data(name + ": unsupported format (not PNG or JPEG)");
  }
  return image;
}

RawImage read_image_file(const std::string& path) {
  return decode_image(read_input_file(path, "an image file", kImageFileLimit), path);
}

RawImage convert_channels(const RawImage& image, int64_t channels) {
  if (image.channels == channels) return image;
  RawImage out(image.width, image.height, channels);
  const size_t n = size_t(image.width * image.height);
  const uint8_t* in = image.pixels.data();
  uint8_t* o = out.pixels.data();
  if (image.channels == 1 && channels == 3) {
    for (size_t i = 0; i < n; ++i) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = in[i];
  } else if (image.channels == 3 && channels == 1) {
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = in + 3 * i;
      o[i] = uint8_t((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    }
  } else {
    throw_data("convert_channels: cannot convert " + std::to_string(image.channels) + " to " +
               std::to_string(channels) + " channels");
  }
  return out;
}

at::Tensor image_to_tensor(const RawImage& image) {
  at::Tensor out = at::empty({image.height, image.width, image.channels}, at::kByte);
  std::memcpy(out.data_ptr<uint8_t>(), image.pixels.data(), image.pixels.size());
  return out;
}

RawImage image_from_tensor(const at::Tensor& hwc_uint8) {
  if (hwc_uint8.scalar_type() != at::kByte || hwc_uint8.dim() != 3) {
    throw_data("image tensor must be uint8 (H, W, C), got " + std::string(at::toString(hwc_uint8.scalar_type())) +
               " with " + std::to_string(hwc_uint8.dim()) + " dims");
  }
  at::Tensor data = hwc_uint8.to(at::kCPU).contiguous();
  RawImage image(data.size(1), data.size(0), data.size(2));
  std::memcpy(image.pixels.data(), data.data_ptr<uint8_t>(), image.pixels.size());
  return image;
}

void write_png(const std::string& path, const at::Tensor& hwc_uint8) { write_png(path, image_from_tensor(hwc_uint8)); }

void write_png(const std::string& path, const RawImage& image) {
  if (image.channels != 1 && image.channels != 3 && image.channels != 4) {
    throw_data(path + ": PNG needs 1, 3 or 4 channels, got " + std::to_string(image.channels));
  }
  if (image.width <= 0 || image.height <= 0) throw_data(path + ": empty image");
  write_atomically(path, [&](std::FILE* f, std::string& error) { return encode_png_file(image, f, error); });
}

void write_jpeg(const std::string& path, const RawImage& image, int quality) {
  if (image.channels != 1 && image.channels != 3) {
    throw_data(path + ": JPEG needs 1 or 3 channels, got " + std::to_string(image.channels));
  }
  if (image.width <= 0 || image.height <= 0) throw_data(path + ": empty image");
  write_atomically(path, [&](std::FILE* f, std::string& error) { return encode_jpeg_file(image, f, quality, error); });
}

}  // namespace difffit
