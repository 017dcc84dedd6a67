#include "report/run_report.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "io/atomic_file.h"
#include "io/system_json.h"
#include "report/svg_plot.h"

namespace compressm::report {
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io::InputError(path.string() + ": cannot read (missing run folder or metrics.json?)");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string dims_text(const nlohmann::json& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "," : "") + std::to_string(dims[i].get<long long>());
  return text + "]";
}

double total_dim(const nlohmann::json& dims) {
  double total = 0;
  for (const auto& d : dims) total += d.get<double>();
  return total;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

// Sample standard deviation (0 for a single run).
double spread(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

LinePlot accuracy_plot(const std::vector<RunSummary>& runs) {
  LinePlot plot{"Validation accuracy against wall-clock time", "wall-clock time since the start (s)",
                "validation accuracy (%)"};
  plot.x_from_zero = true;
  for (const RunSummary& r : runs) {
    Series s{r.label};
    s.markers = true;
    for (size_t i = 0; i < r.metrics["val_accuracy"].size(); ++i) {
      s.x.push_back(r.metrics["elapsed_s"][i].get<double>());
      s.y.push_back(100 * r.metrics["val_accuracy"][i].get<double>());
    }
    plot.series.push_back(std::move(s));
  }
  return plot;
}

// State dimension (sum over blocks) after every step where it changed.
LinePlot dimension_plot(const std::vector<RunSummary>& runs) {
  LinePlot plot{"State dimension over training", "training step", "state dimension N (sum over blocks)"};
  plot.x_from_zero = plot.y_from_zero = true;
  for (const RunSummary& r : runs) {
    Series s{r.label};
    s.steps = true;
    const auto& dims = r.metrics["state_dims"];
    if (dims.empty()) continue;
    // Start: each block's size before its first reduction, else its size at the first evaluation.
    std::vector<double> now;
    for (const auto& d : dims[0]) now.push_back(d.get<double>());
    std::vector<bool> seen(now.size(), false);
    for (const auto& e : r.metrics["reduction_history"]) {
      const auto b = e["block"].get<size_t>();
      if (b < now.size() && !seen[b]) now[b] = e["old_dim"].get<double>();
      if (b < now.size()) seen[b] = true;
    }
    auto total = [&] {
      double t = 0;
      for (double d : now) t += d;
      return t;
    };
    s.x.push_back(0);
    s.y.push_back(total());
    for (const auto& e : r.metrics["reduction_history"]) {
      const auto b = e["block"].get<size_t>();
      if (b >= now.size()) continue;
      s.x.push_back(e["step"].get<double>());
      now[b] = e["new_dim"].get<double>();
      s.y.push_back(total());
      if (e["rolled_back"].get<bool>()) now[b] = e["old_dim"].get<double>();  // shown at the next point
    }
    s.x.push_back(r.metrics["steps"].back().get<double>());
    s.y.push_back(total_dim(r.metrics["final_state_dims"]));
    plot.series.push_back(std::move(s));
  }
  return plot;
}

// One plot per (run, block) that had reductions: HSVs at each reduction.
std::vector<std::pair<std::string, LinePlot>> hsv_plots(const std::vector<RunSummary>& runs) {
  std::vector<std::pair<std::string, LinePlot>> plots;
  for (size_t k = 0; k < runs.size(); ++k) {
    std::map<int64_t, LinePlot> by_block;
    for (const auto& e : runs[k].metrics["reduction_history"]) {
      const int64_t b = e["block"].get<int64_t>();
      LinePlot& plot = by_block[b];
      if (plot.title.empty()) {
        plot.title = "HSV spectrum, " + runs[k].label + ", block " + std::to_string(b);
        plot.x_label = "state index i (descending HSV order)";
        plot.y_label = "Hankel singular value sigma_i";
        plot.log_y = true;
      }
      Series s{"step " + std::to_string(e["step"].get<long long>()) + ": " +
               std::to_string(e["old_dim"].get<long long>()) + " -> " + std::to_string(e["new_dim"].get<long long>())};
      const auto& hsv = e["hsv"];
      for (size_t i = 0; i < hsv.size(); ++i) {
        s.x.push_back(static_cast<double>(i + 1));
        s.y.push_back(hsv[i].get<double>());
      }
      plot.series.push_back(std::move(s));
    }
    for (auto& [b, plot] : by_block)
      plots.emplace_back("hsv_run" + std::to_string(k + 1) + "_block" + std::to_string(b) + ".svg", std::move(plot));
  }
  return plots;
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return out;
}

// The Markdown tables as HTML tables (the header row, then the data rows).
std::string html_tables(const std::string& markdown) {
  std::ostringstream html;
  std::istringstream lines(markdown);
  bool open = false, header = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("|", 0) != 0) {
      if (open) html << "</table>\n";
      open = false;
      continue;
    }
    if (line.rfind("|---", 0) == 0) continue;
    if (!open) html << "<table>\n";
    header = !open;
    open = true;
    html << "<tr>";
    std::istringstream cells(line.substr(1));
    for (std::string cell; std::getline(cells, cell, '|');)
      html << (header ? "<th>" : "<td>") << html_escape(cell) << (header ? "</th>" : "</td>");
    html << "</tr>\n";
  }
  if (open) html << "</table>\n";
  return html.str();
}

}  // namespace

std::string seed_group(const std::string& label) {
  static const std::regex suffix("[-_]seed[0-9]+$");
  return std::regex_replace(label, suffix, "");
}

RunSummary read_run(const fs::path& folder) {
  RunSummary r;
  r.folder = folder;
  r.label = fs::absolute(folder).lexically_normal().filename().string();
  if (r.label.empty()) r.label = fs::absolute(folder).lexically_normal().parent_path().filename().string();
  const fs::path path = folder / "metrics.json";
  try {
    r.metrics = nlohmann::json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw io::InputError(path.string() + ": malformed JSON (" + e.what() + ")");
  }
  for (const char* key : {"steps", "val_accuracy", "elapsed_s", "state_dims", "final_state_dims",
                          "final_test_accuracy", "best_test_accuracy", "wall_time_s", "reduction_history"})
    if (!r.metrics.is_object() || !r.metrics.contains(key))
      throw io::InputError(path.string() + ": no '" + key + "' (not a metrics.json written by compressm train)");
  if (r.metrics["steps"].empty()) throw io::InputError(path.string() + ": the run has no evaluations");
  std::ifstream config(folder / "config.yaml");
  for (std::string line; std::getline(config, line);)
    if (line.rfind("dataset:", 0) == 0) r.dataset = line.substr(line.find_first_not_of(' ', 8));
  return r;
}

std::string markdown_summary(const std::vector<RunSummary>& runs) {
  std::ostringstream md;
  md << "| run | final test acc. (%) | test acc. at best val. (%) | final N | reductions | training time (s) | "
        "speed-up |\n"
     << "|---|---|---|---|---|---|---|\n";
  const double base_time = runs.empty() ? 0 : runs[0].metrics["wall_time_s"].get<double>();
  const double base_steps = runs.empty() ? 0 : runs[0].metrics["steps"].back().get<double>();
  for (const RunSummary& r : runs) {
    const double t = r.metrics["wall_time_s"].get<double>();
    // Wall times compare only between runs of the same length.
    const double steps = r.metrics["steps"].back().get<double>();
    const std::string speed_up = steps != base_steps ? format("n/a (%.0f steps)", steps)
                                                     : format("%.2fx", t > 0 ? base_time / t : 0.0);
    md << "| " << r.label << " | " << format("%.2f", 100 * r.metrics["final_test_accuracy"].get<double>()) << " | "
       << format("%.2f", 100 * r.metrics["best_test_accuracy"].get<double>()) << " | "
       << dims_text(r.metrics["final_state_dims"]) << " | " << r.metrics["reduction_history"].size() << " | "
       << format("%.1f", t) << " | " << speed_up << " |\n";
  }
  std::map<std::string, std::vector<const RunSummary*>> groups;
  std::vector<std::string> order;
  for (const RunSummary& r : runs) {
    const std::string g = seed_group(r.label);
    if (!groups.count(g)) order.push_back(g);
    groups[g].push_back(&r);
  }
  if (order.size() == runs.size()) return md.str();
  md << "\n| group | runs | final test acc. (%), mean ± sd | final N (sum), mean | training time (s), mean |\n"
     << "|---|---|---|---|---|\n";
  for (const std::string& g : order) {
    std::vector<double> acc, dims, time;
    for (const RunSummary* r : groups[g]) {
      acc.push_back(100 * r->metrics["final_test_accuracy"].get<double>());
      dims.push_back(total_dim(r->metrics["final_state_dims"]));
      time.push_back(r->metrics["wall_time_s"].get<double>());
    }
    md << "| " << g << " | " << acc.size() << " | " << format("%.2f", mean(acc)) << " ± " << format("%.2f", spread(acc))
       << " | " << format("%.1f", mean(dims)) << " | " << format("%.1f", mean(time)) << " |\n";
  }
  return md.str();
}

fs::path write_report(const std::vector<RunSummary>& runs, const fs::path& out) {
  fs::create_directories(out);
  std::vector<std::pair<std::string, LinePlot>> plots = {{"val_accuracy_vs_time.svg", accuracy_plot(runs)},
                                                         {"state_dimension.svg", dimension_plot(runs)}};
  for (auto& p : hsv_plots(runs)) plots.push_back(std::move(p));
  for (const auto& [name, plot] : plots) io::write_file_atomically(out / name, render_svg(plot));
  const std::string md = markdown_summary(runs);
  io::write_file_atomically(out / "summary.md", md);

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>compressm report</title>\n"
       << "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
       << "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
       << "td:first-child,th:first-child{text-align:left}img{display:block;margin:1em 0}</style></head><body>\n"
       << "<h1>compressm report</h1>\n<h2>Runs</h2>\n<ul>\n";
  for (const RunSummary& r : runs)
    html << "<li><b>" << html_escape(r.label) << "</b>: " << html_escape(fs::absolute(r.folder).string())
         << (r.dataset.empty() ? "" : " (" + html_escape(r.dataset) + ")") << "</li>\n";
  html << "</ul>\n<h2>Summary</h2>\n" << html_tables(md) << "<p>The same as Markdown: summary.md</p>\n"
       << "<p>Speed-up: wall time of the first run divided by the run's wall time (training, evaluations and "
          "reductions included), for runs of the first run's length. Test accuracy at best validation: the test "
          "set is measured when the validation accuracy improves (the reference's rule).</p>\n<h2>Plots</h2>\n";
  for (const auto& [name, plot] : plots) html << "<img src=\"" << name << "\" alt=\"" << html_escape(plot.title) << "\">\n";
  html << "</body></html>\n";
  io::write_file_atomically(out / "index.html", html.str());
  return out / "index.html";
}

}  // namespace compressm::report
