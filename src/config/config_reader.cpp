// Config files and --set overrides -> Config. Every problem is a one-line
// ConfigError naming the file (and line) or the flag, and the key path.
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "config/config.h"
#include "config/config_schema.h"
#include "config/config_values.h"

namespace compressm::config {
namespace detail {

void fail(const Origin& origin, const std::string& path, const std::string& problem) {
  std::string message = origin.source + ": ";
  if (!path.empty()) message += path + ": ";
  message += problem;
  if (origin.line > 0) message += " (line " + std::to_string(origin.line) + ")";
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  throw ConfigError(message);
}

}  // namespace detail

namespace {

using detail::fail;
using detail::key_path;
using detail::Origin;
using detail::Origins;
using detail::ScalarInput;

// A config is a few dozen lines; anything this large is not one.
constexpr std::size_t kMaxConfigBytes = 1 << 20;

ScalarInput to_input(const YAML::Node& node) {
  ScalarInput input;
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      input.kind = ScalarInput::Kind::kScalar;
      input.text = node.Scalar();
      input.tag = node.Tag();
      // "?" = plain; "!" = quoted; a core-schema tag (`!!int 5`) asks for the resolution
      // a plain scalar gets anyway; `!!str 5` and any other tag make it a string.
      input.plain = input.tag == "?" || input.tag == "tag:yaml.org,2002:int" ||
                    input.tag == "tag:yaml.org,2002:float" ||
                    input.tag == "tag:yaml.org,2002:bool" || input.tag == "tag:yaml.org,2002:null";
      break;
    case YAML::NodeType::Sequence: input.kind = ScalarInput::Kind::kList; break;
    case YAML::NodeType::Map: input.kind = ScalarInput::Kind::kMapping; break;
    default: input.kind = ScalarInput::Kind::kNull; break;
  }
  return input;
}

bool is_section(std::string_view name) {
  return std::find(detail::kSections.begin(), detail::kSections.end(), name) !=
         detail::kSections.end();
}

// Reads `input` into the field at section.key. False if there is no such field.
bool assign(Config& config, std::string_view section, std::string_view key,
            const ScalarInput& input, std::optional<std::string>& problem) {
  bool found = false;
  detail::for_each_field(config, [&](std::string_view s, std::string_view k, auto& value) {
    if (found || s != section || k != key) return;
    found = true;
    problem = detail::read_value(input, value);
  });
  return found;
}

std::string known_keys(std::string_view section) {
  std::string keys;
  const Config defaults;
  detail::for_each_field(defaults, [&](std::string_view s, std::string_view k, const auto&) {
    if (s == section) keys += (keys.empty() ? "" : ", ") + std::string(k);
  });
  if (section.empty()) {
    for (std::string_view name : detail::kSections) keys += ", " + std::string(name);
  }
  return keys;
}

// Untrusted text as it appears in a message: as is when harmless, else escaped.
std::string shown(const std::string& text) {
  const std::string escaped = detail::quote_untrusted(text, 200);
  return escaped == "\"" + text + "\"" ? text : escaped;
}

std::string unknown_key_problem(std::string_view section) {
  return "unknown key (expected one of: " + known_keys(section) + ")";
}

// One YAML document -> Config, recording where each key came from.
class FileReader {
 public:
  FileReader(Config& config, Origins& origins, std::string source, std::vector<std::string>* notes)
      : config_(config), origins_(origins), source_(std::move(source)), notes_(notes) {}

  void read(const YAML::Node& root) {
    if (!root.IsMap()) {
      const std::string got = root.IsNull() ? "an empty document" : "a " + kind_name(root);
      fail(at(root), "", "expected a mapping of keys (e.g. `dataset: smnist`), got " + got);
    }
    read_mapping("", root);
    resolve_red_steps();
  }

 private:
  Origin at(const YAML::Node& node) const {
    return Origin{source_, node.Mark().is_null() ? 0 : node.Mark().line + 1, 0};
  }

  static std::string kind_name(const YAML::Node& node) {
    return node.IsSequence() ? "list" : node.IsMap() ? "mapping" : "scalar";
  }

  void read_mapping(std::string_view section, const YAML::Node& mapping) {
    for (const auto& entry : mapping) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        fail(at(key), section.empty() ? "" : std::string(section),
             "keys must be names, got a " + kind_name(key));
      }
      const std::string name = key.Scalar();
      const std::string path = key_path(section, name);
      const Origin origin = at(key);
      if (section.empty() && is_section(name)) {
        mark_given(path, path, origin);
        if (entry.second.IsNull()) continue;  // `model:` with every key left at its default
        if (!entry.second.IsMap()) {
          fail(origin, path, "expected a mapping of keys, got " + describe_node(entry.second));
        }
        read_mapping(name, entry.second);
      } else if (const detail::LegacyKey* legacy = detail::find_legacy_key(path)) {
        read_legacy(*legacy, entry.second, origin);
      } else {
        read_field(section, name, path, entry.second, origin);
      }
    }
  }

  static std::string describe_node(const YAML::Node& node) {
    if (node.IsScalar()) return detail::quote_untrusted(node.Scalar());
    return "a " + kind_name(node);
  }

  void read_field(std::string_view section, const std::string& name, const std::string& path,
                  const YAML::Node& value, const Origin& origin) {
    std::optional<std::string> problem;
    if (!assign(config_, section, name, to_input(value), problem)) {
      fail(origin, shown(path), unknown_key_problem(section));
    }
    if (problem) fail(origin, path, *problem);
    mark_given(path, path, origin);
    origins_.record(path, source_, origin.line);
  }

  void read_legacy(const detail::LegacyKey& legacy, const YAML::Node& value, const Origin& origin) {
    const std::string path(legacy.path);
    if (!legacy.note.empty() && notes_ != nullptr) notes_->emplace_back(legacy.note);
    if (legacy.current.empty()) {  // accepted for compatibility, type-checked, ignored
      bool ignored = false;
      if (auto problem = detail::read_value(to_input(value), ignored)) fail(origin, path, *problem);
      mark_given(path, path, origin);
      return;
    }
    if (path == "reduction.red_steps") {  // a length: red_end is known only after red_start
      std::int64_t steps = 0;
      if (auto problem = detail::read_value(to_input(value), steps)) fail(origin, path, *problem);
      if (steps < 0) fail(origin, path, "must be >= 0, got " + std::to_string(steps));
      mark_given("reduction.red_end", path, origin);
      red_steps_ = std::make_pair(steps, origin);
      return;
    }
    const std::string current(legacy.current);
    const auto dot = current.find('.');
    const std::string section = dot == std::string::npos ? "" : current.substr(0, dot);
    const std::string name = dot == std::string::npos ? current : current.substr(dot + 1);
    std::optional<std::string> problem;
    assign(config_, section, name, to_input(value), problem);
    if (problem) fail(origin, path, *problem);
    mark_given(current, path, origin);
    origins_.record(current, source_, origin.line);
  }

  // Each key once, under its current or its legacy name.
  void mark_given(const std::string& current, const std::string& written, const Origin& origin) {
    const auto [it, inserted] = given_.emplace(current, written);
    if (inserted) return;
    if (it->second == written) fail(origin, written, "given twice");
    fail(origin, written, "given together with " + it->second + ", which sets the same value");
  }

  void resolve_red_steps() {
    if (!red_steps_) return;
    const auto& [steps, origin] = *red_steps_;
    config_.reduction.red_end = config_.reduction.red_start + steps;
    origins_.record("reduction.red_end", source_, origin.line);
  }

  Config& config_;
  Origins& origins_;
  std::string source_;
  std::vector<std::string>* notes_;
  std::map<std::string, std::string> given_;  // current key -> the name the file used
  std::optional<std::pair<std::int64_t, Origin>> red_steps_;
};

void apply_override(Config& config, const std::string& assignment, Origins* origins) {
  const std::string label = "--set " + shown(assignment);
  const Origin origin{label, 0, 0};
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    fail(origin, "", "expected section.key=value (e.g. training.lr=1e-3 or dataset=digits)");
  }
  const std::string path = assignment.substr(0, equals);
  if (is_section(path)) {
    fail(origin, path, "is a section; set one of its keys (e.g. " + path + "." +
                           known_keys(path).substr(0, known_keys(path).find(',')) + "=...)");
  }
  if (const detail::LegacyKey* legacy = detail::find_legacy_key(path)) {
    if (!legacy->current.empty()) {
      fail(origin, path, "a key of the reference's configs; set " + std::string(legacy->current));
    }
    fail(origin, path, "has no effect; set reduction.hsv_interval");
  }
  const auto dot = path.find('.');
  const std::string section = dot == std::string::npos ? "" : path.substr(0, dot);
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(equals + 1));
  } catch (const YAML::Exception& e) {
    fail(origin, shown(path), "cannot read the value as YAML: " + e.msg);
  }
  std::optional<std::string> problem;
  if (!assign(config, section, name, to_input(value), problem)) {
    fail(origin, shown(path), unknown_key_problem(is_section(section) ? section : ""));
  }
  if (problem) fail(origin, path, *problem);
  if (origins != nullptr) origins->record(path, label, 0);
}

}  // namespace

void apply_override(Config& config, const std::string& assignment) {
  apply_override(config, assignment, nullptr);
}

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides, std::vector<std::string>* notes) {
  const Origin file{source, 0, 0};
  if (yaml_text.size() > kMaxConfigBytes) {
    fail(file, "", "too large for a config file (" + std::to_string(yaml_text.size()) + " bytes)");
  }
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    // yaml-cpp's own text for its nesting guard is "bad file".
    const bool too_deep = dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr;
    const std::string problem = too_deep ? "nested too deeply" : e.msg;
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    const std::string where =
        line > 0 ? " at line " + std::to_string(line) + ", column " + std::to_string(e.mark.column + 1)
                 : "";
    fail(file, "", "malformed YAML" + where + ": " + problem);
  }
  if (documents.size() > 1) {
    fail(file, "", "holds " + std::to_string(documents.size()) + " YAML documents; expected one");
  }
  Config config;
  Origins origins(source);
  FileReader(config, origins, source, notes).read(documents.empty() ? YAML::Node() : documents[0]);
  for (const std::string& assignment : overrides) apply_override(config, assignment, &origins);
  detail::validate(config, origins);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   std::vector<std::string>* notes) {
  namespace fs = std::filesystem;
  const Origin file{path, 0, 0};
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) fail(file, "", "config file not found");
  if (fs::is_directory(status)) fail(file, "", "is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(file, "", std::string("cannot open the config file: ") + std::strerror(errno));
  std::string text;
  std::vector<char> chunk(64 * 1024);
  while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
    text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) break;  // parse_config names the problem
  }
  if (in.bad()) fail(file, "", "cannot read the config file");
  return parse_config(text, path, overrides, notes);
}

}  // namespace compressm::config
