// The flag values that name model settings (--device, --precision,
// --block-ops), read the same way by the bench programs that build LRU blocks.
// A value outside the list is std::invalid_argument naming the flag.
#pragma once

#include <stdexcept>
#include <string>

#include "nn/lru_model.h"
#include "nn/precision.h"

namespace compressm::bench {

inline void check_device_name(const std::string& device) {
  if (device != "cpu" && device != "cuda") throw std::invalid_argument("--device: cpu or cuda, got " + device);
}

inline nn::Precision precision_named(const std::string& name) {
  if (name == "fp32") return nn::Precision::kFp32;
  if (name == "tf32") return nn::Precision::kTf32;
  if (name == "bf16") return nn::Precision::kBf16;
  throw std::invalid_argument("--precision: fp32, tf32 or bf16, got " + name);
}

inline nn::BlockOps block_ops_named(const std::string& name) {
  if (name == "auto") return nn::BlockOps::kAuto;
  if (name == "fused") return nn::BlockOps::kFused;
  if (name == "composed") return nn::BlockOps::kComposed;
  throw std::invalid_argument("--block-ops: auto, fused or composed, got " + name);
}

inline const char* block_ops_name(nn::BlockOps ops) {
  switch (ops) {
    case nn::BlockOps::kFused: return "fused";
    case nn::BlockOps::kComposed: return "composed";
    case nn::BlockOps::kAuto: break;
  }
  return "auto";
}

}  // namespace compressm::bench
