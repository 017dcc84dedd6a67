// A small SVG line-chart writer for the run report: axes with ticks and
// units, a legend, linear or log10 y. No dependencies beyond the standard
// library; the output is a self-contained <svg> document.
#pragma once

#include <string>
#include <vector>

namespace compressm::report {

struct Series {
  std::string name;           // legend entry
  std::vector<double> x{}, y{};  // same length; non-finite points are skipped
  bool steps = false;         // draw as a step function (state dimension over steps)
  bool markers = false;       // a dot at every point
};

struct LinePlot {
  std::string title;
  std::string x_label;        // with unit, e.g. "wall-clock time (s)"
  std::string y_label;
  bool log_y = false;         // log10 axis; non-positive values are skipped
  bool x_from_zero = false;   // the x axis starts at 0 (times, steps)
  bool y_from_zero = false;   // the y axis starts at 0 (sizes)
  std::vector<Series> series{};
  int width = 720, height = 420;
};

// The plot as an SVG document. Empty data gives an empty frame with the
// note "no data".
std::string render_svg(const LinePlot& plot);

// "nice" tick values covering [lo, hi] (about `count` of them).
std::vector<double> nice_ticks(double lo, double hi, int count);

}  // namespace compressm::report
