#include "report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace compressm::report {
namespace {

// A colour-blind-safe palette (Okabe and Ito).
constexpr const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                    "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

std::string tick_label(double v, bool log_axis) {
  char text[32];
  if (log_axis) {
    std::snprintf(text, sizeof text, "1e%d", static_cast<int>(std::lround(v)));
  } else if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) {
    std::snprintf(text, sizeof text, "%.0e", v);
  } else {
    std::snprintf(text, sizeof text, "%g", v);
  }
  return text;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
  void pad() {
    if (lo == hi) {
      lo -= lo == 0 ? 1 : std::abs(lo) * 0.1;
      hi += hi == 0 ? 1 : std::abs(hi) * 0.1;
    }
  }
};

bool usable(double x, double y, bool log_y) { return std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0); }

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo) || count < 1) return {lo};
  const double raw = (hi - lo) / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string render_svg(const LinePlot& plot) {
  const double left = 78, right = 190, top = 40, bottom = 58;
  const double w = plot.width - left - right, h = plot.height - top - bottom;
  Range xr, yr;
  for (const Series& s : plot.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (usable(s.x[i], s.y[i], plot.log_y)) {
        xr.add(s.x[i]);
        yr.add(plot.log_y ? std::log10(s.y[i]) : s.y[i]);
      }
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << plot.width << "\" height=\"" << plot.height
      << "\" viewBox=\"0 0 " << plot.width << ' ' << plot.height << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << number(left + w / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
      << escape(plot.title) << "</text>\n"
      << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << number(w) << "\" height=\"" << number(h)
      << "\" fill=\"none\" stroke=\"#444\"/>\n";
  // Axis labels.
  svg << "<text x=\"" << number(left + w / 2) << "\" y=\"" << number(plot.height - 14)
      << "\" text-anchor=\"middle\">" << escape(plot.x_label) << "</text>\n"
      << "<text transform=\"translate(18," << number(top + h / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
      << escape(plot.y_label) << "</text>\n";
  if (xr.empty() || yr.empty()) {
    svg << "<text x=\"" << number(left + w / 2) << "\" y=\"" << number(top + h / 2)
        << "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</svg>\n";
    return svg.str();
  }
  if (plot.x_from_zero) xr.lo = std::min(xr.lo, 0.0);
  if (plot.y_from_zero && !plot.log_y) yr.lo = std::min(yr.lo, 0.0);
  xr.pad();
  yr.pad();
  if (plot.log_y) {
    yr.lo = std::floor(yr.lo);
    yr.hi = std::ceil(yr.hi);
    if (yr.lo == yr.hi) yr.hi += 1;
  }
  auto px = [&](double x) { return left + (x - xr.lo) / (xr.hi - xr.lo) * w; };
  auto py = [&](double y) { return top + h - ((plot.log_y ? std::log10(y) : y) - yr.lo) / (yr.hi - yr.lo) * h; };
  // Ticks and grid.
  for (double t : nice_ticks(xr.lo, xr.hi, 6)) {
    const double x = px(t);
    svg << "<line x1=\"" << number(x) << "\" y1=\"" << top << "\" x2=\"" << number(x) << "\" y2=\"" << number(top + h)
        << "\" stroke=\"#eee\"/><text x=\"" << number(x) << "\" y=\"" << number(top + h + 16)
        << "\" text-anchor=\"middle\">" << tick_label(t, false) << "</text>\n";
  }
  const std::vector<double> y_ticks =
      plot.log_y ? nice_ticks(yr.lo, yr.hi, std::max(1, static_cast<int>(yr.hi - yr.lo))) : nice_ticks(yr.lo, yr.hi, 6);
  for (double t : y_ticks) {
    const double y = top + h - (t - yr.lo) / (yr.hi - yr.lo) * h;
    svg << "<line x1=\"" << left << "\" y1=\"" << number(y) << "\" x2=\"" << number(left + w) << "\" y2=\"" << number(y)
        << "\" stroke=\"#eee\"/><text x=\"" << number(left - 6) << "\" y=\"" << number(y + 4)
        << "\" text-anchor=\"end\">" << tick_label(t, plot.log_y) << "</text>\n";
  }
  // Series and legend.
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const Series& s = plot.series[k];
    constexpr size_t kPalette = sizeof kColours / sizeof *kColours;
    const char* colour = kColours[k % kPalette];
    // Past the palette, the colours repeat with another dash pattern.
    constexpr const char* kDashes[] = {"", " stroke-dasharray=\"6 3\"", " stroke-dasharray=\"2 2\""};
    const char* dash = kDashes[(k / kPalette) % 3];
    std::string points;
    double last_y = 0;
    bool first = true;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.x[i], s.y[i], plot.log_y)) continue;
      if (s.steps && !first) points += number(px(s.x[i])) + "," + number(last_y) + " ";
      last_y = py(s.y[i]);
      points += number(px(s.x[i])) + "," + number(last_y) + " ";
      if (s.markers)
        svg << "<circle cx=\"" << number(px(s.x[i])) << "\" cy=\"" << number(last_y) << "\" r=\"2.5\" fill=\""
            << colour << "\"/>\n";
      first = false;
    }
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\"" << dash << " stroke-width=\"1.8\" points=\"" << points
        << "\"/>\n";
    const double ly = top + 10 + 18 * static_cast<double>(k);
    if (ly > top + h) continue;  // no room for more legend entries
    svg << "<line x1=\"" << number(left + w + 12) << "\" y1=\"" << number(ly) << "\" x2=\"" << number(left + w + 32)
        << "\" y2=\"" << number(ly) << "\" stroke=\"" << colour << "\"" << dash << " stroke-width=\"2.5\"/><text x=\""
        << number(left + w + 38) << "\" y=\"" << number(ly + 4) << "\">" << escape(s.name) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace compressm::report
