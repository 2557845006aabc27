#include "bench_support.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QJsonDocument>
#include <QtCore/QJsonObject>
#include <QtCore/QProcess>
#include <QtCore/QStringList>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

namespace bench {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// --- Distributions ---------------------------------------------------------------

Distribution distribution(std::vector<double> samples) {
  Distribution d;
  if (samples.empty()) return d;
  std::sort(samples.begin(), samples.end());
  auto rank = [&](double p) {
    auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(samples.size())));
    return samples[std::clamp<std::size_t>(i, 1, samples.size()) - 1];
  };
  d.p50 = rank(0.50);
  d.p99 = rank(0.99);
  d.min = samples.front();
  d.max = samples.back();
  d.negative = static_cast<std::size_t>(std::lower_bound(samples.begin(), samples.end(), 0.0) - samples.begin());
  return d;
}

Distribution median_of_runs(const std::vector<Distribution>& runs) {
  Distribution out;
  if (runs.empty()) return out;
  auto median_of = [&](double Distribution::*field) {
    std::vector<double> v;
    for (const Distribution& d : runs) v.push_back(d.*field);
    return median(std::move(v));
  };
  out.p50 = median_of(&Distribution::p50);
  out.p99 = median_of(&Distribution::p99);
  out.min = runs.front().min;
  out.max = runs.front().max;
  for (const Distribution& d : runs) {
    out.min = std::min(out.min, d.min);
    out.max = std::max(out.max, d.max);
    out.negative += d.negative;
  }
  return out;
}

long preemptions() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_nivcsw;
}

// --- CPU placement ------------------------------------------------------------------

namespace {

std::vector<int> cpus_of(const cpu_set_t& set) {
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

void set_this_thread(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

}  // namespace

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  pthread_getaffinity_np(pthread_self(), sizeof set, &set);
  return cpus_of(set);
}

void pin_this_thread(int cpu) { set_this_thread({cpu}); }

ScopedPin::ScopedPin(int cpu) : saved_(allowed_cpus()) { pin_this_thread(cpu); }

ScopedPin::~ScopedPin() { set_this_thread(saved_); }

// --- Python peers ----------------------------------------------------------------------

void run_python_peers(const char* program, const char* script, const std::vector<std::string>& args,
                      const std::vector<PeerFigure>& figures) {
  // Debian's interpreter first: python3-uvloop is installed for it, whatever
  // another python3 on PATH has.
  const QString python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  QStringList argv{QStringLiteral(QILOOP_BENCH_PEERS_DIR "/") + QString::fromUtf8(script)};
  for (const std::string& a : args) argv.push_back(QString::fromStdString(a));
  QProcess p;
  p.start(python, argv);
  if (!p.waitForFinished(10 * 60 * 1000) || p.exitCode() != 0) {
    std::fprintf(stderr, "%s: the Python peers (%s) did not run (%s): %s\n", program, script,
                 qPrintable(p.errorString()), p.readAllStandardError().constData());
    return;
  }
  const QJsonObject all = QJsonDocument::fromJson(p.readAllStandardOutput()).object();
  for (const char* impl : {"asyncio", "uvloop"}) {
    const QJsonObject got = all.value(QLatin1String(impl)).toObject();
    for (const PeerFigure& f : figures)
      if (got.contains(QLatin1String(f.key)))
        note(f.scenario, f.metric, f.shown.unit, impl, f.shown(got.value(QLatin1String(f.key)).toDouble()));
  }
}

// --- Summary --------------------------------------------------------------------------

namespace {

constexpr std::string_view kQiloop = "qiloop";

struct Row {
  std::string scenario;
  std::string metric;
  Unit unit;
  std::vector<std::pair<std::string, double>> values;  // by impl, in the order first recorded
};

struct Summary {
  std::vector<Row> rows;
  std::vector<Target> targets;

  Row* find(std::string_view scenario, std::string_view metric) {
    for (Row& r : rows)
      if (r.scenario == scenario && r.metric == metric) return &r;
    return nullptr;
  }
  std::optional<double> value(std::string_view scenario, std::string_view metric, std::string_view impl) {
    if (Row* r = find(scenario, metric))
      for (auto& [name, v] : r->values)
        if (name == impl) return v;
    return std::nullopt;
  }
};

Summary& summary() {
  static Summary s;
  return s;
}

std::string format(Unit unit, double v) {
  char buf[64];
  switch (unit) {
    case Unit::kRate:
      if (v >= 1e6)
        std::snprintf(buf, sizeof buf, "%.2fM/s", v / 1e6);
      else if (v >= 1e3)
        std::snprintf(buf, sizeof buf, "%.1fk/s", v / 1e3);
      else
        std::snprintf(buf, sizeof buf, "%.1f/s", v);
      break;
    case Unit::kNanoseconds:
      std::snprintf(buf, sizeof buf, "%.1f ns", v);
      break;
    case Unit::kMicroseconds:
      std::snprintf(buf, sizeof buf, "%.1f us", v);
      break;
    case Unit::kMilliseconds:
      std::snprintf(buf, sizeof buf, "%.2f ms", v);
      break;
    case Unit::kCount:
      std::snprintf(buf, sizeof buf, "%.0f", v);
      break;
  }
  return buf;
}

std::string format_ratio(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", r);
  return buf;
}

}  // namespace

void note(std::string_view scenario, std::string_view metric, Unit unit, std::string_view impl, double value) {
  Summary& s = summary();
  Row* row = s.find(scenario, metric);
  if (!row) row = &s.rows.emplace_back(Row{std::string(scenario), std::string(metric), unit, {}});
  auto it = std::find_if(row->values.begin(), row->values.end(), [&](auto& p) { return p.first == impl; });
  if (it == row->values.end())
    row->values.emplace_back(std::string(impl), value);
  else
    it->second = value;
}

void record(benchmark::State& state, std::string_view scenario, std::string_view metric, Unit unit,
            std::string_view impl, double value) {
  note(scenario, metric, unit, impl, value);
  Summary& s = summary();
  state.counters[std::string(metric)] = value;
  if (impl != kQiloop)
    if (auto q = s.value(scenario, metric, kQiloop); q && value != 0)
      state.counters["qiloop/this " + std::string(metric)] = *q / value;
}

void record_us(benchmark::State& state, std::string_view scenario, std::string_view impl, const Distribution& d,
               bool early) {
  record(state, scenario, metric::kP50, Unit::kMicroseconds, impl, d.p50);
  record(state, scenario, metric::kP99, Unit::kMicroseconds, impl, d.p99);
  record(state, scenario, metric::kMax, Unit::kMicroseconds, impl, d.max);
  if (early) record(state, scenario, metric::kEarly, Unit::kCount, impl, static_cast<double>(d.negative));
}

void add_target(Target target) { summary().targets.push_back(std::move(target)); }

void print_summary(std::FILE* out, const char* program, bool smoke) {
  Summary& s = summary();
  if (s.rows.empty()) return;
  std::fprintf(out, "\n==== %s: qiloop and its peers, this run%s ====\n", program,
               smoke ? " (--smoke: sizes shrunk, figures indicative only)" : "");
  std::fprintf(out, "%-36s %-26s %-24s %14s %12s\n", "scenario", "metric", "implementation", "value", "qiloop/impl");
  for (const Row& r : s.rows) {
    auto q = s.value(r.scenario, r.metric, kQiloop);
    bool first = true;
    for (auto& [impl, v] : r.values) {
      std::string ratio = (q && impl != kQiloop && v != 0) ? format_ratio(*q / v) : "";
      std::fprintf(out, "%-36s %-26s %-24s %14s %12s\n", first ? r.scenario.c_str() : "",
                   first ? r.metric.c_str() : "", impl.c_str(), format(r.unit, v).c_str(), ratio.c_str());
      first = false;
    }
  }
  if (s.targets.empty()) return;
  std::fprintf(out, "\n==== %s: targets ====\n", program);
  for (const Target& t : s.targets) {
    const char* cmp = t.compare == Compare::kAtLeast ? ">=" : "<=";
    Row* row = s.find(t.scenario, t.metric);
    auto q = s.value(t.scenario, t.metric, kQiloop);
    std::optional<double> peer;
    if (t.relation != Relation::kValue) peer = s.value(t.scenario, t.metric, t.peer);
    std::string what, bound, actual;
    std::optional<double> lhs;
    switch (t.relation) {
      case Relation::kValue:
        what = "qiloop";
        bound = row ? format(row->unit, t.bound) : format_ratio(t.bound);
        if (q) lhs = *q;
        break;
      case Relation::kRatioTo:
        what = "qiloop / " + t.peer;
        bound = format_ratio(t.bound);
        if (q && peer && *peer != 0) lhs = *q / *peer;
        break;
      case Relation::kExcessOver:
        what = "qiloop - " + t.peer;
        bound = row ? format(row->unit, t.bound) : format_ratio(t.bound);
        if (q && peer) lhs = *q - *peer;
        break;
    }
    if (lhs) actual = t.relation == Relation::kRatioTo ? format_ratio(*lhs) : format(row->unit, *lhs);
    const char* verdict = "n/a   ";
    if (lhs) verdict = (t.compare == Compare::kAtLeast ? *lhs >= t.bound : *lhs <= t.bound) ? "met   " : "MISSED";
    std::fprintf(out, "[%s] %s, %s: %s %s %s   (measured %s)\n", verdict, t.scenario.c_str(), t.metric.c_str(),
                 what.c_str(), cmp, bound.c_str(), lhs ? actual.c_str() : "-");
  }
}

// --- main ------------------------------------------------------------------------------

void interleaved(benchmark::State& state, const char* scen, const char* met, std::vector<Contender> cs,
                 Shown shown) {
  for (auto& c : cs) c.run(std::max<int64_t>(c.items / 10, 1));  // warm: pools, caches, lazy state
  std::vector<std::vector<double>> per_item(cs.size());
  for (auto _ : state) {
    for (std::size_t i = 0; i < cs.size(); ++i)
      per_item[i].push_back(cs[i].run(cs[i].items) / static_cast<double>(cs[i].items));
    state.SetIterationTime(per_item[0].back() * static_cast<double>(cs[0].items));
  }
  state.SetItemsProcessed(state.iterations() * cs[0].items);
  const double q = shown(median(per_item[0]) * 1e9);
  record(state, scen, met, shown.unit, cs[0].impl, q);
  for (std::size_t i = 1; i < cs.size(); ++i) {
    const double v = shown(median(per_item[i]) * 1e9);
    note(scen, met, shown.unit, cs[i].impl, v);
    state.counters[std::string(cs[i].impl) + " " + met] = v;
    if (v != 0) state.counters["qiloop/" + std::string(cs[i].impl)] = q / v;
  }
}

int bench_main(int argc, char** argv, void (*register_all)(const Options&)) {
  Options opt;
  // With --benchmark_format=json (or csv) stdout is for machines: the
  // summary goes to stderr then.
  std::FILE* summary_out = stdout;
  // Google Benchmark rejects flags it does not know, so --smoke goes first.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--benchmark_format=", 19) == 0 && std::strcmp(argv[i] + 19, "console") != 0)
      summary_out = stderr;
    if (std::strcmp(argv[i], "--smoke") == 0)
      opt.smoke = true;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = nullptr;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  QCoreApplication app(argc, argv);
  // A scenario that never stops its loop would hang CI: fail loudly instead.
  std::thread([budget = opt.smoke ? std::chrono::minutes(2) : std::chrono::minutes(30)] {
    std::this_thread::sleep_for(budget);
    std::fprintf(stderr, "benchmark still running after %d minutes: aborting (a loop that never stopped?)\n",
                 static_cast<int>(budget.count()));
    std::abort();
  }).detach();
  register_all(opt);
  benchmark::RunSpecifiedBenchmarks();
  const char* slash = std::strrchr(argv[0], '/');
  std::fflush(stdout);
  print_summary(summary_out, slash ? slash + 1 : argv[0], opt.smoke);
  std::fflush(summary_out);
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
