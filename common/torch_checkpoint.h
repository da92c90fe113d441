// Reading and writing Python torch.save() zip-format checkpoints (torch >= 1.6)
// without Python: the zip is parsed by ZipArchive, data.pkl by the generic
// unpickler, and tensors are rebuilt from the raw storages. The legacy format
// (torch < 1.6, e.g. pytorch-fid's Inception weights) is read too.
#pragma once

#include "common/state_dict.h"

#include <string>

namespace difffit {

// Loads every tensor of a torch.save()'d file. If the top-level object is a dict of tensors it is returned as is.
// If it is a training dict, `select` chooses the sub-dict: "auto" prefers "ema", then "model", then "state_dict";
// any other value names the key to use. Non-tensor entries of a state dict are skipped. Throws difffit::Error
// (ErrorKind::Data, see common/error.h) naming the file and what is wrong (not a zip, missing data.pkl, unsupported
// storage type, missing storage record, key not found: list the keys that exist).
// Tensors are owned, contiguous CPU copies; tensors that shared a storage in the file no longer do.
StateDict load_torch_checkpoint(const std::string& path, const std::string& select = "auto");

// Writes a zip-format file that Python's torch.load() reads back as an OrderedDict of tensors (protocol 2 pickle,
// 64-byte-aligned stored entries, `archive/version` = 3, data.pkl, data/<i>). Atomic: writes path + ".tmp" then renames.
// Also writes `archive/byteorder` = "little" (read by torch 2.x). Throws difffit::Error (Data) for an undefined,
// non-dense or unsupported-dtype tensor, (IO) when the file cannot be written.
void save_torch_state_dict(const std::string& path, const StateDict& tensors);

bool is_zip_file(const std::string& path);  // magic check
bool is_legacy_torch_file(const std::string& path);  // pre-1.6 torch.save magic check

}  // namespace difffit
