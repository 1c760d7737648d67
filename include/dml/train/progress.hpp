// dml/train/progress.hpp: what a training run prints. An epoch table in
// fastai's format, and a progress bar for the epoch under way: a live bar on
// a terminal, plain periodic lines in a log file, nothing when quiet.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "../config.hpp"

namespace dml::train {

// How progress is shown. Auto: a bar when the stream is std::cout and stdout
// is a terminal, lines otherwise.
enum class Progress { Auto, Bar, Lines, Quiet };

// One row of the epoch table. valid_loss and accuracy are NaN without a test set.
struct EpochStats {
  std::int64_t epoch = 0;
  double train_loss = 0, valid_loss = 0, accuracy = 0, seconds = 0;
};

// Seconds as fastai prints them: "00:07", "12:34", "1:02:03".
inline std::string format_time(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<std::int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

// fastai's smoothed loss: an exponential moving average (beta 0.98) with
// bias correction, so the first values are not pulled towards zero.
class SmoothedLoss {
 public:
  explicit SmoothedLoss(double beta = 0.98) : beta_(beta) {}
  void add(double x) {
    ++n_;
    avg_ = beta_ * avg_ + (1 - beta_) * x;
  }
  double value() const { return n_ == 0 ? 0.0 : avg_ / (1 - std::pow(beta_, static_cast<double>(n_))); }
  void reset() { n_ = 0, avg_ = 0; }

 private:
  double beta_, avg_ = 0;
  std::int64_t n_ = 0;
};

// The epoch table: a header line, then one row per epoch with each column
// left-aligned to max(width of its name + 2, 10), as fastai prints it:
//   epoch     train_loss  valid_loss  accuracy  time
//   0         0.412345    0.123456    0.962000  00:12
class EpochTable {
 public:
  EpochTable(std::ostream& out, std::vector<std::string> columns) : out_(out), columns_(std::move(columns)) {
    for (const auto& c : columns_) widths_.push_back(std::max<std::size_t>(c.size() + 2, 10));
  }
  void header() { line(columns_); }
  // One row: the cells as already formatted strings, one per column.
  void row(const std::vector<std::string>& cells) {
    DML_CHECK(cells.size() == columns_.size(), "EpochTable: ", cells.size(), " cells for ", columns_.size(),
              " columns");
    line(cells);
  }
  // A number with six decimals (fastai's format); "nan"/"inf" as such.
  static std::string number(double x) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(6) << x;
    return s.str();
  }

 private:
  void line(const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      text += cells[i];
      if (i + 1 < cells.size()) text.append(widths_[i] > cells[i].size() ? widths_[i] - cells[i].size() : 1, ' ');
    }
    out_ << text << '\n' << std::flush;
  }
  std::ostream& out_;
  std::vector<std::string> columns_;
  std::vector<std::size_t> widths_;
};

// Progress of one pass over `total` steps (batches). In Bar mode the line is
// redrawn in place (at most ~8 times a second) and erased by finish(); in
// Lines mode a line is printed at every tenth of the pass and at least every
// 30 s; Quiet prints nothing. The caller reports each step with update().
class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  ProgressBar(std::ostream& out, Progress mode) : out_(out), mode_(resolve(out, mode)) {}

  Progress mode() const noexcept { return mode_; }

  // Starts a pass: `label` names it ("epoch 2/5", "valid").
  void start(std::string label, std::int64_t total) {
    label_ = std::move(label);
    total_ = std::max<std::int64_t>(total, 1);
    done_ = 0;
    t0_ = last_draw_ = Clock::now();
    next_tenth_ = 1;
    drawn_width_ = 0;
  }

  // `done` steps of the pass are finished; `loss` (optional, < 0: none) is the
  // smoothed training loss to show.
  void update(std::int64_t done, double loss = -1) {
    done_ = done;
    if (mode_ == Progress::Quiet) return;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_draw_).count();
    if (mode_ == Progress::Bar) {
      if (since < 0.125 && done_ < total_) return;
      draw_bar(loss);
    } else {
      const bool tenth = done_ * 10 >= next_tenth_ * total_;
      if (!tenth && since < 30) return;
      while (next_tenth_ * total_ <= done_ * 10) ++next_tenth_;
      out_ << label_ << ": " << status(loss) << '\n' << std::flush;
    }
    last_draw_ = now;
  }

  // Ends the pass: erases the bar (the table row follows in its place).
  void finish() {
    if (mode_ == Progress::Bar && drawn_width_ > 0) {
      out_ << '\r' << std::string(drawn_width_, ' ') << '\r' << std::flush;
      drawn_width_ = 0;
    }
  }

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }

 private:
  static Progress resolve(std::ostream& out, Progress mode) {
    if (mode != Progress::Auto) return mode;
    return (&out == &std::cout && ::isatty(STDOUT_FILENO)) ? Progress::Bar : Progress::Lines;
  }
  // "120/469 batches, 41.3 it/s, ETA 00:08, loss 0.3124".
  std::string status(double loss) const {
    const double t = elapsed();
    const double rate = t > 0 ? static_cast<double>(done_) / t : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
    std::ostringstream s;
    s << done_ << '/' << total_ << " batches, " << std::fixed << std::setprecision(1) << rate << " it/s, "
      << (done_ < total_ ? "ETA " + format_time(eta) : "took " + format_time(t));
    if (loss >= 0) s << ", loss " << std::setprecision(4) << loss;
    return s.str();
  }
  void draw_bar(double loss) {
    constexpr int kWidth = 30;
    const auto filled = static_cast<int>(kWidth * done_ / total_);
    std::string text = label_ + " [" + std::string(static_cast<std::size_t>(filled), '#') +
                       std::string(static_cast<std::size_t>(kWidth - filled), '.') + "] " + status(loss);
    const std::size_t width = text.size();
    if (width < drawn_width_) text.append(drawn_width_ - width, ' ');
    out_ << '\r' << text << std::flush;
    drawn_width_ = std::max(drawn_width_, width);
  }

  std::ostream& out_;
  Progress mode_;
  std::string label_;
  std::int64_t total_ = 1, done_ = 0, next_tenth_ = 1;
  Clock::time_point t0_, last_draw_;
  std::size_t drawn_width_ = 0;
};

}  // namespace dml::train
