// call_graph.cpp — the await graph: walking a task's chain of suspended
// Coros (PromiseBase::awaited, each frame's `where`), finding who awaits a
// future, and asyncio 3.14's rendering of it.
#include <qiloop/call_graph.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace qi::detail {

namespace {

// The task's Coros, outermost (the root) first, down to the innermost one:
// the one that waits, or that runs when the task is the current one.
std::vector<PromiseBase*> frames_of(const TaskCore& t) {
  std::vector<PromiseBase*> frames;
  for (PromiseBase* p = t.root_promise(); p; p = p->awaited) frames.push_back(p);
  return frames;
}

// g++ names a coroutine's site after its resumption function:
// "void ns::f(ns::f(int)::_ZN2ns1fEi.Frame*)"; the mangled name in it
// demangles to "ns::f(int)". Other names (clang's bare "f", a plain
// function's) are kept as they are.
std::string function_name(const char* raw) {
  std::string_view s(raw);
  constexpr std::string_view kTail = ".Frame*)";
  const std::size_t tail = s.rfind(kTail);
  const std::size_t mangled = tail == std::string_view::npos ? tail : s.rfind("::_Z", tail);
  if (mangled != std::string_view::npos && tail + kTail.size() == s.size()) {
    const std::string symbol(s.substr(mangled + 2, tail - mangled - 2));
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> out(abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status),
                                                    &std::free);
    if (status == 0 && out) return out.get();
  }
  return std::string(s);
}

FrameCallGraphEntry entry_of(const AwaitSite& site, bool last_await) {
  FrameCallGraphEntry e;
  if (site.line() != 0) {
    e.function = function_name(site.function_name());
    e.file = site.file_name();
    e.line = site.line();
  }
  e.last_await = last_await && site.line() != 0;
  return e;
}

// asyncio's limit: |limit| entries, the outermost (the end of an
// innermost-first stack) when positive, the innermost when negative.
void trim(std::vector<FrameCallGraphEntry>& stack, std::optional<int> limit) {
  if (!limit) return;
  const std::size_t keep = std::min<std::size_t>(stack.size(), static_cast<std::size_t>(std::abs(long{*limit})));
  if (*limit >= 0)
    stack.erase(stack.begin(), stack.end() - static_cast<std::ptrdiff_t>(keep));
  else
    stack.resize(keep);
}

TaskCore* as_task(FutureStateBase* s) noexcept { return s && s->is_task() ? static_cast<TaskCore*>(s) : nullptr; }

// Builds graphs; one builder serves every task of a dump, so the loop's
// tasks are indexed by what they await once.
class GraphBuilder {
 public:
  // kGraph: the whole graph (capture_call_graph). kDump: the tasks awaiting
  // the future one level up, without their stacks (dump_tasks lists each).
  enum class Mode { kGraph, kDump };
  GraphBuilder(std::optional<int> limit, const AwaitSite& site, Mode mode)
      : limit_(limit), site_(site), mode_(mode) {}

  FutureCallGraph build(FutureStateBase& f) {
    path_.clear();
    return node(f, 0);
  }

 private:
  FutureCallGraph node(FutureStateBase& f, int depth) {
    FutureCallGraph g;
    g.future = FutureRef(&f);
    if (mode_ == Mode::kDump && depth > 0) return g;
    if (TaskCore* t = as_task(&f)) {
      g.call_stack = stack_of(*t);
      if (const EscapeRecord* e = t->done() ? t->escape() : nullptr; e && e->cause) g.exception_origin = e->cause->origin;
    }
    if (depth >= kMaxAwaitedByDepth || std::find(path_.begin(), path_.end(), &f) != path_.end()) {
      g.awaited_by_cut = !awaiters_of(f).empty();
      return g;
    }
    path_.push_back(&f);
    for (FutureStateBase* w : awaiters_of(f)) g.awaited_by.push_back(node(*w, depth + 1));
    path_.pop_back();
    return g;
  }

  std::vector<FrameCallGraphEntry> stack_of(const TaskCore& t) const {
    std::vector<FrameCallGraphEntry> stack;
    if (t.done()) {
      if (const EscapeRecord* e = t.escape()) {
        for (std::size_t i = 0; i < e->sites.size(); ++i) stack.push_back(entry_of(to_site(e->sites[i]), i == 0));
      }
    } else if (t.started()) {
      const std::vector<PromiseBase*> frames = frames_of(t);
      const bool running = &t == TaskCore::current();
      for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
        const bool innermost = it == frames.rbegin();
        stack.push_back(entry_of(running && innermost ? site_ : to_site((*it)->where), false));
      }
    }
    trim(stack, limit_);
    return stack;
  }

  // The tasks whose wake-up waits for f, oldest first, then those linked to
  // it by add_awaited_by.
  std::vector<FutureStateBase*> awaiters_of(FutureStateBase& f) {
    std::vector<FutureStateBase*> out;
    if (QiEventLoop* loop = f.loop()) {
      index(*loop);
      if (auto it = awaiting_.find(&f); it != awaiting_.end()) out = it->second;
    }
    for (FutureStateBase* t : f.linked_awaiters())
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    return out;
  }

  void index(QiEventLoop& loop) {
    if (indexed_ == &loop) return;
    indexed_ = &loop;
    awaiting_.clear();
    for (const TaskRef& r : all_tasks(loop)) {
      TaskCore* t = as_task(r.state());
      if (FutureStateBase* w = t->awaiting()) awaiting_[w].push_back(t);
    }
  }

  std::optional<int> limit_;
  AwaitSite site_;
  Mode mode_;
  std::vector<const FutureStateBase*> path_;  // the nodes from the root of the graph to here
  const QiEventLoop* indexed_ = nullptr;
  std::unordered_map<const FutureStateBase*, std::vector<FutureStateBase*>> awaiting_;
};

FutureStateBase& require(const FutureRef& f, const char* api) {
  if (!f) throw std::invalid_argument(std::string(api) + ": the future is empty (default-constructed); pass a task or "
                                      "future, or call it without one for the current task");
  return *f.state();
}

// Python's repr() of a str, as asyncio writes a task's name: quoted with '
// (with " when the text has a ' and no "), backslash, the quote and control
// characters escaped, so that no name can break the layout.
std::string repr(const std::string& text) {
  const char quote = text.find('\'') != std::string::npos && text.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (const char c : text) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c == quote) {
          out += '\\';
          out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char escaped[5];
          std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += quote;
  return out;
}

void render(const FutureCallGraph& g, std::string& out, int level) {
  const std::string indent(static_cast<std::size_t>(level) * 4, ' ');
  auto line = [&](const std::string& text) {
    if (!out.empty()) out += '\n';
    out += indent;
    out += text;
  };
  char id[2 + 2 * sizeof(void*) + 1];
  std::snprintf(id, sizeof id, "%#llx",
                static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(g.future.state())));
  TaskCore* t = as_task(g.future.state());
  line(t ? "* Task(name=" + repr(t->name()) + ", id=" + id + ")" : std::string("* Future(id=") + id + ")");
  if (t && !t->done() && !t->started()) line("  + Not started yet");
  if (!g.call_stack.empty()) {
    line(t && t->done() ? "  + Call stack (when its exception escaped):" : "  + Call stack:");
    for (const FrameCallGraphEntry& e : g.call_stack) {
      if (e.line == 0) {
        line("  |   in a coroutine that had not reached a co_await");
        continue;
      }
      std::string fn = e.function;
      if (fn.find('(') == std::string::npos) fn += "()";
      line("  |   File '" + e.file + "', line " + std::to_string(e.line) + (e.last_await ? " (its last co_await)" : "") +
           ", in async " + fn);
    }
  }
  if (!g.exception_origin.empty()) line("  + Its exception was thrown by " + g.exception_origin);
  if (!g.awaited_by.empty()) {
    line("  + Awaited by:");
    for (const FutureCallGraph& a : g.awaited_by) render(a, out, level + 1);
  } else if (g.awaited_by_cut) {
    line("  + Awaited by: (not followed: a cycle, or deeper than qi::kMaxAwaitedByDepth)");
  }
}

}  // namespace

namespace {
// The record of the exception last rethrown from a plain future on this
// thread (one at a time: it is consumed by the escape it causes, or
// replaced by the next).
thread_local std::shared_ptr<const EscapeRecord> t_rethrown;
}  // namespace

void note_rethrown(std::shared_ptr<const EscapeRecord> record) noexcept { t_rethrown = std::move(record); }

void note_exception_escaped(PromiseBase& from) noexcept {
  TaskCore* t = TaskCore::current();
  if (!t) return;
  // The same exception leaving the coroutines above: recorded deeper down.
  if (const EscapeRecord* prev = t->escape(); prev && prev->exception == from.exception) return;
  try {
    auto record = std::make_shared<EscapeRecord>();
    record->exception = from.exception;
    if (t_rethrown && t_rethrown->exception == from.exception) record->cause = std::move(t_rethrown);
    const std::vector<PromiseBase*> frames = frames_of(*t);
    // `from` is the innermost of the chain, unless a coroutine of another
    // type stands between (the chain then ends above it).
    auto it = std::find(frames.begin(), frames.end(), &from);
    record->sites.push_back(from.where);
    for (auto up = std::make_reverse_iterator(it); up != frames.rend(); ++up)
      record->sites.push_back((*up)->where);
    t->set_escape(std::move(record));
  } catch (...) {
    // Out of memory: the report goes without the chain.
  }
}

std::string call_graph_for_report(FutureStateBase* s) noexcept {
  if (!s || !s->is_task()) return {};
  try {
    return "\n" + format_call_graph(FutureRef(s));
  } catch (...) {
    return {};
  }
}

}  // namespace qi::detail

namespace qi {

using detail::GraphBuilder;

FutureCallGraph capture_call_graph(const FutureRef& future, std::optional<int> limit, detail::AwaitSite site) {
  detail::FutureStateBase& f = detail::require(future, "capture_call_graph");
  return GraphBuilder(limit, site, GraphBuilder::Mode::kGraph).build(f);
}

std::optional<FutureCallGraph> capture_call_graph(std::optional<int> limit, detail::AwaitSite site) {
  detail::TaskCore* t = detail::TaskCore::current();
  if (!t) return std::nullopt;
  return GraphBuilder(limit, site, GraphBuilder::Mode::kGraph).build(*t);
}

std::string format_call_graph(const FutureCallGraph& graph) {
  std::string out;
  if (graph.future) detail::render(graph, out, 0);
  return out;
}

std::string format_call_graph(const FutureRef& future, std::optional<int> limit, detail::AwaitSite site) {
  return format_call_graph(capture_call_graph(future, limit, site));
}

std::string format_call_graph(std::optional<int> limit, detail::AwaitSite site) {
  std::optional<FutureCallGraph> g = capture_call_graph(limit, site);
  return g ? format_call_graph(*g) : std::string();
}

void print_call_graph(const FutureRef& future, std::FILE* out, std::optional<int> limit, detail::AwaitSite site) {
  const std::string text = format_call_graph(future, limit, site) + '\n';
  std::fwrite(text.data(), 1, text.size(), out);
}

void print_call_graph(const FutureRef& future, std::ostream& out, std::optional<int> limit, detail::AwaitSite site) {
  out << format_call_graph(future, limit, site) << '\n';
}

void print_call_graph(std::FILE* out, std::optional<int> limit, detail::AwaitSite site) {
  if (detail::TaskCore* t = detail::TaskCore::current()) print_call_graph(FutureRef(t), out, limit, site);
}

std::vector<TaskRef> all_tasks(const QiEventLoop& loop) {
  std::vector<TaskRef> tasks;
  tasks.reserve(loop.impl_->task_count);
  // The registry puts the newest first.
  for (detail::TaskCore* t = loop.impl_->tasks_head; t; t = t->next_in_loop) tasks.emplace_back(t);
  std::reverse(tasks.begin(), tasks.end());
  return tasks;
}

namespace detail {

void add_awaited_by(const FutureRef& future, const TaskRef& task) {
  FutureStateBase& f = require(future, "add_awaited_by");
  TaskCore* t = as_task(task.state());
  if (!t) throw std::invalid_argument("add_awaited_by: the waiter must be a task (a non-empty TaskRef)");
  if (&f != t) f.add_awaited_by(*t);
}

void remove_awaited_by(const FutureRef& future, const TaskRef& task) noexcept {
  if (TaskCore* t = as_task(task.state()); t && future) future.state()->remove_awaited_by(*t);
}

}  // namespace detail

}  // namespace qi

std::string QiEventLoop::dump_tasks() const {
  const std::vector<qi::TaskRef> tasks = qi::all_tasks(*this);
  std::string out = std::to_string(tasks.size()) + (tasks.size() == 1 ? " pending task" : " pending tasks");
  // Awaiters one level up, by name only: each has its own entry.
  qi::detail::GraphBuilder builder(std::nullopt, {}, qi::detail::GraphBuilder::Mode::kDump);
  for (const qi::TaskRef& t : tasks) out += '\n' + qi::format_call_graph(builder.build(*t.state()));
  return out;
}
