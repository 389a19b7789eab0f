#include "profile.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numbers>
#include <sstream>

#include "../common/cli.hpp"

namespace sluice::tools {

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = text.find(separator, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::optional<double> seconds(std::string_view text) {
  const auto ns = parse_duration_ns(text);
  if (!ns) return std::nullopt;
  return static_cast<double>(*ns) / 1e9;
}

// "TIME:RATE" items, times from 0s and increasing.
bool parse_points(std::string_view body, std::vector<std::pair<double, double>>& points, std::string& error) {
  for (std::string_view item : split(body, ',')) {
    const std::size_t colon = item.find(':');
    const auto t = colon == std::string_view::npos ? std::nullopt : seconds(item.substr(0, colon));
    const auto rate = colon == std::string_view::npos ? std::nullopt : parse_non_negative(item.substr(colon + 1));
    if (!t || !rate) {
      error = "'" + std::string(item) + "' is not TIME:RATE (like 120s:60)";
      return false;
    }
    if (points.empty() && *t != 0) {
      error = "the first point must be at 0s, not '" + std::string(item) + "'";
      return false;
    }
    if (!points.empty() && *t <= points.back().first) {
      error = "times must increase: '" + std::string(item) + "' is not after the point before it";
      return false;
    }
    points.emplace_back(*t, *rate);
  }
  return true;
}

}  // namespace

std::optional<RateProfile> RateProfile::parse(std::string_view spec, std::string& error) {
  RateProfile p;
  p.text_ = std::string(spec);
  std::string_view body = spec;
  if (body.starts_with("steps:")) {
    body.remove_prefix(6);
  } else if (body.starts_with("linear:")) {
    p.kind_ = Kind::linear;
    body.remove_prefix(7);
  } else if (body.starts_with("sine:")) {
    p.kind_ = Kind::sine;
    body.remove_prefix(5);
  }
  if (p.kind_ == Kind::sine) {
    bool have_mean = false, have_amplitude = false, have_period = false;
    for (std::string_view item : split(body, ',')) {
      const std::size_t eq = item.find('=');
      const std::string_view key = item.substr(0, eq);
      const std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
      std::optional<double> number = key == "period" ? seconds(value) : parse_non_negative(value);
      if (eq == std::string_view::npos || !number) {
        error = "sine: '" + std::string(item) + "' is not mean=R, amplitude=R, period=DURATION or phase=DEGREES";
        return std::nullopt;
      }
      if (key == "mean") p.mean_ = *number, have_mean = true;
      else if (key == "amplitude") p.amplitude_ = *number, have_amplitude = true;
      else if (key == "period") p.period_s_ = *number, have_period = true;
      else if (key == "phase") p.phase_rad_ = *number * std::numbers::pi / 180.0;
      else {
        error = "sine: unknown key '" + std::string(key) + "' (mean, amplitude, period, phase)";
        return std::nullopt;
      }
    }
    if (!have_mean || !have_amplitude || !have_period) {
      error = "sine needs mean=R, amplitude=R and period=DURATION";
      return std::nullopt;
    }
    if (p.amplitude_ > p.mean_ || p.period_s_ <= 0 || p.mean_ <= 0) {
      error = "sine needs 0 <= amplitude <= mean, mean > 0 and a period above 0 (a rate is never negative)";
      return std::nullopt;
    }
    return p;
  }
  if (!parse_points(body, p.points_, error)) return std::nullopt;
  if (p.max_rate() <= 0) {
    error = "every rate is 0: no arrival would ever come";
    return std::nullopt;
  }
  return p;
}

std::optional<RateProfile> RateProfile::load(const std::string& path, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot read " + path;
    return std::nullopt;
  }
  std::string joined, line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    line.erase(std::remove_if(line.begin(), line.end(), [](unsigned char c) { return std::isspace(c); }), line.end());
    if (line.empty()) continue;
    // A kind alone on its line ("linear:") is followed directly by the first item.
    if (!joined.empty() && joined.back() != ':') joined += ',';
    joined += line;
  }
  auto profile = parse(joined, error);
  if (!profile) error = path + ": " + error;
  return profile;
}

double RateProfile::rate_at(double t) const {
  if (kind_ == Kind::sine) return std::max(0.0, mean_ + amplitude_ * std::sin(2 * std::numbers::pi * t / period_s_ + phase_rad_));
  // The last point at or before t.
  const auto after = std::upper_bound(points_.begin(), points_.end(), t,
                                      [](double value, const auto& point) { return value < point.first; });
  const auto& at = *(after - 1);
  if (kind_ == Kind::steps || after == points_.end()) return at.second;
  const double f = (t - at.first) / (after->first - at.first);
  return at.second + f * (after->second - at.second);
}

double RateProfile::max_rate() const {
  if (kind_ == Kind::sine) return mean_ + amplitude_;
  double m = 0;
  for (const auto& point : points_) m = std::max(m, point.second);
  return m;
}

double RateProfile::expected(double t0, double t1) const {
  if (kind_ == Kind::sine) {
    const double w = 2 * std::numbers::pi / period_s_;
    return mean_ * (t1 - t0) - amplitude_ / w * (std::cos(w * t1 + phase_rad_) - std::cos(w * t0 + phase_rad_));
  }
  // Piece by piece; on each, steps are constant and lines integrate to the mean of their ends.
  double total = 0;
  for (std::size_t i = 0; i < points_.size(); ++i) {
    const double start = std::max(t0, points_[i].first);
    const double end = std::min(t1, i + 1 < points_.size() ? points_[i + 1].first : t1);
    if (end <= start) continue;
    total += kind_ == Kind::steps ? points_[i].second * (end - start) : (rate_at(start) + rate_at(end)) / 2 * (end - start);
  }
  return total;
}

ArrivalProcess::ArrivalProcess(double rate, const std::optional<RateProfile>& profile, std::uint64_t seed,
                               double horizon_ns)
    : rate_(profile ? profile->max_rate() : rate), profile_(profile), random_(seed),
      horizon_ns_(horizon_ns > 0 ? horizon_ns : INFINITY) {}

double ArrivalProcess::next_ns() {
  const double mean_gap_ns = 1e9 / rate_;
  t_ns_ += random_.exponential(mean_gap_ns);
  if (!profile_) return t_ns_;
  // Thinning: a candidate at the maximum rate is kept with probability lambda(t) / max.
  while (t_ns_ < horizon_ns_ && random_.uniform_open0() * rate_ > profile_->rate_at(t_ns_ / 1e9)) {
    t_ns_ += random_.exponential(mean_gap_ns);
  }
  return t_ns_;
}

}  // namespace sluice::tools
