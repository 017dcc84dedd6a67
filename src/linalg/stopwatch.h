// Wall-clock laps for the timing breakdowns the benchmarks report.
#pragma once

#include <chrono>

namespace compressm::linalg {

class Stopwatch {
 public:
  // Milliseconds since construction or the previous lap.
  double lap_ms() {
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
    return ms;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace compressm::linalg
