// Text as pixels for figures (class names beside sample-grid rows), drawn with FreeType
// from Debian's DejaVu Sans.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace difffit {

// The font file used (DIFFFIT_FONT overrides); "" when none is installed.
std::string default_font_path();

// The characters of UTF-8 `text` (class names such as "Crème brûlée"); a byte that starts no
// valid character becomes U+FFFD.
std::u32string utf8_code_points(const std::string& text);

// UTF-8 `text` as a uint8 coverage mask (height, width): 255 = ink. `pixel_height` is the em
// size. Returns an undefined tensor when no font can be loaded.
at::Tensor render_text(const std::string& text, int64_t pixel_height);

}  // namespace difffit
