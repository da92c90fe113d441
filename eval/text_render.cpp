#include "eval/text_render.h"

#include <ft2build.h>
#include FT_FREETYPE_H

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace difffit {

std::string default_font_path() {
  if (const char* env = std::getenv("DIFFFIT_FONT")) return env;
  for (const char* path : {"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                           "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"}) {
    if (std::filesystem::exists(path)) return path;
  }
  return "";
}

std::u32string utf8_code_points(const std::string& text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const int length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    char32_t c = length == 1 ? lead : length == 2 ? lead & 0x1F : length == 3 ? lead & 0x0F : lead & 0x07;
    bool valid = length > 0 && i + length <= text.size();
    for (int k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xC0) == 0x80;
      c = (c << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not characters either.
    static const char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    valid = valid && c >= kSmallest[length] && c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF);
    out.push_back(valid ? c : U'\uFFFD');
    i += valid ? length : 1;
  }
  return out;
}

at::Tensor render_text(const std::string& utf8, int64_t pixel_height) {
  const std::string font = default_font_path();
  const std::u32string text = utf8_code_points(utf8);
  if (font.empty() || text.empty()) return {};
  FT_Library library = nullptr;
  if (FT_Init_FreeType(&library)) return {};
  FT_Face face = nullptr;
  if (FT_New_Face(library, font.c_str(), 0, &face) || FT_Set_Pixel_Sizes(face, 0, static_cast<FT_UInt>(pixel_height))) {
    FT_Done_FreeType(library);
    return {};
  }
  // Two passes: measure the pen advance, then draw each glyph on the baseline.
  const int64_t ascender = face->size->metrics.ascender >> 6, descender = -(face->size->metrics.descender >> 6);
  int64_t width = 0;
  for (const char32_t c : text) {
    if (!FT_Load_Char(face, c, FT_LOAD_DEFAULT)) width += face->glyph->advance.x >> 6;
  }
  at::Tensor mask = at::zeros({ascender + descender, std::max<int64_t>(width, 1)}, at::kByte);
  uint8_t* out = mask.data_ptr<uint8_t>();
  const int64_t h = mask.size(0), w = mask.size(1);
  int64_t pen = 0;
  for (const char32_t c : text) {
    if (FT_Load_Char(face, c, FT_LOAD_RENDER)) continue;
    const FT_GlyphSlot g = face->glyph;
    for (unsigned row = 0; row < g->bitmap.rows; ++row) {
      for (unsigned col = 0; col < g->bitmap.width; ++col) {
        const int64_t y = ascender - g->bitmap_top + row, x = pen + g->bitmap_left + col;
        if (y < 0 || y >= h || x < 0 || x >= w) continue;
        uint8_t& px = out[y * w + x];
        px = std::max<uint8_t>(px, g->bitmap.buffer[row * g->bitmap.pitch + col]);
      }
    }
    pen += g->advance.x >> 6;
  }
  FT_Done_Face(face);
  FT_Done_FreeType(library);
  return mask;
}

}  // namespace difffit
