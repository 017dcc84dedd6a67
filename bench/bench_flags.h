// The "--name value" command lines of the bench programs: every flag takes a
// value, and a flag that no option reads is an error (std::invalid_argument).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace compressm::bench {

class Flags {
 public:
  Flags(int argc, char** argv) {
    for (int i = 1; i < argc; i += 2) {
      const std::string name = argv[i];
      if (i + 1 >= argc) throw std::invalid_argument("option " + name + " needs a value");
      values_[name] = argv[i + 1];
    }
  }

  // `value` from flag `name`, when it was given.
  void read(const std::string& name, std::string& value) {
    if (const std::string* v = take(name)) value = *v;
  }
  void read(const std::string& name, int64_t& value) {
    if (const std::string* v = take(name)) value = parse(name, *v, [](const std::string& t, size_t* end) {
      return std::stoll(t, end);
    });
  }
  void read(const std::string& name, int& value) {
    if (const std::string* v = take(name)) value = parse(name, *v, [](const std::string& t, size_t* end) {
      return std::stoi(t, end);
    });
  }
  void read(const std::string& name, double& value) {
    if (const std::string* v = take(name)) value = parse(name, *v, [](const std::string& t, size_t* end) {
      return std::stod(t, end);
    });
  }

  // After the reads: throws for a flag that none of them asked for.
  void check_all_read() const {
    for (const auto& [name, value] : values_)
      if (!asked_.count(name)) throw std::invalid_argument("unknown option " + name);
  }

 private:
  // The whole of `text` as a number, or std::invalid_argument naming the flag.
  template <class Convert>
  static decltype(std::declval<Convert>()(std::string(), nullptr)) parse(const std::string& name,
                                                                       const std::string& text, Convert convert) {
    size_t end = 0;
    try {
      const auto value = convert(text, &end);
      if (end == text.size()) return value;
    } catch (const std::exception&) {
    }
    throw std::invalid_argument(name + ": not a number in range: '" + text + "'");
  }

  const std::string* take(const std::string& name) {
    asked_.insert(name);
    const auto found = values_.find(name);
    return found == values_.end() ? nullptr : &found->second;
  }

  std::map<std::string, std::string> values_;
  std::set<std::string> asked_;
};

}  // namespace compressm::bench
