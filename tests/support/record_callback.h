// A LibTorch RecordFunction callback (ATen/record_function.h) for a scope:
// added when constructed, removed when destroyed, also when a failed
// ASSERT leaves the test early (a callback left behind would keep counting
// in the binary's later tests).
#pragma once

#include <ATen/record_function.h>

#include <utility>

namespace compressm::testing {

class ScopedRecordCallback {
 public:
  explicit ScopedRecordCallback(at::RecordFunctionCallback callback)
      : handle_(at::addGlobalCallback(std::move(callback))) {}
  ~ScopedRecordCallback() { at::removeCallback(handle_); }
  ScopedRecordCallback(const ScopedRecordCallback&) = delete;
  ScopedRecordCallback& operator=(const ScopedRecordCallback&) = delete;

 private:
  at::CallbackHandle handle_;
};

}  // namespace compressm::testing
