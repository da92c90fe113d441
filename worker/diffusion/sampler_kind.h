// The reverse-process samplers by name: parsed once where they come in (a flag, a config
// field), the valid names in the error.
#pragma once

#include <string>

namespace difffit {

enum class SamplerKind { Ddpm, Ddim };
// "ddpm" | "ddim"; throws Config naming `where` otherwise.
SamplerKind parse_sampler(const std::string& name, const std::string& where = "--sampler");
std::string sampler_name(SamplerKind sampler);

}  // namespace difffit
