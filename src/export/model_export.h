// LibTorch model -> runtime model file (runtime/model_file.h). The only place
// that sees both sides: src/runtime itself never includes LibTorch.
#pragma once

#include <cstdint>
#include <string>

#include "nn/lru_model.h"
#include "runtime/safetensors.h"

namespace compressm::exporting {

// The model's parameters and BatchNorm running statistics (not the
// num_batches_tracked counter) as F32 tensors under their LibTorch names, and
// the metadata of runtime::model_metadata. `config_yaml`, `dataset` and
// `seed` are provenance (what `compressm classify --dataset` reads back).
runtime::TensorFile model_tensor_file(const nn::LruModel& model, const std::string& config_yaml,
                                      const std::string& dataset, int64_t seed);

// The bytes of the model file; throws runtime::ModelFileError (prefixed by
// `source`) if the runtime would refuse the result (e.g. non-finite weights
// of a diverged run), so a file that exists is a file that loads.
std::string encode_model_file(const runtime::TensorFile& file, const std::string& source);

}  // namespace compressm::exporting
