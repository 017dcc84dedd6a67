// The flag values that name model settings (--device, --precision,
// --block-ops), read the same way by the bench programs that build LRU blocks,
// and the whole model's flags of the programs that build an LruModel
// (ModelFlags). A value outside the list is std::invalid_argument naming the
// flag.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "bench_flags.h"
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

inline void check_drop_rate(double p) {
  if (!(p >= 0 && p < 1)) throw std::invalid_argument("--dropout: in [0, 1)");
}

// --blocks --state --hidden --batch --length --input --classes --dropout
// --precision --block-ops --wide-lru: an LruModel on {batch, length, input}
// inputs. Defaults: the sMNIST configuration, dropout 0.1 as in the configs;
// a program may change them before read().
struct ModelFlags {
  int64_t blocks = 1, state = 256, hidden = 8, batch = 50, length = 784, input = 1, classes = 10;
  double dropout = 0.1;
  std::string precision = "fp32", block_ops = "auto", wide_lru = "bf16";

  // Reads the flags given (check() their values after Flags::check_all_read).
  void read(Flags& flags) {
    flags.read("--precision", precision);
    flags.read("--blocks", blocks);
    flags.read("--state", state);
    flags.read("--hidden", hidden);
    flags.read("--batch", batch);
    flags.read("--length", length);
    flags.read("--input", input);
    flags.read("--classes", classes);
    flags.read("--dropout", dropout);
    flags.read("--block-ops", block_ops);
    flags.read("--wide-lru", wide_lru);
  }

  // The named values and the drop rate (not the sizes).
  void check() const {
    check_drop_rate(dropout);
    if (wide_lru != "bf16" && wide_lru != "fp32")
      throw std::invalid_argument("--wide-lru: bf16 or fp32, got " + wide_lru);
    block_ops_named(block_ops);
    precision_named(precision);
  }

  nn::LruModelOptions model() const {
    nn::LruModelOptions m;
    m.input_dim = input;
    m.num_classes = classes;
    m.num_blocks = blocks;
    m.state_dim = state;
    m.hidden_dim = hidden;
    m.drop_rate = dropout;
    m.precision = precision_named(precision);
    m.block_ops = block_ops_named(block_ops);
    m.wide_lru_bf16 = wide_lru == "bf16";
    return m;
  }
};

}  // namespace compressm::bench
