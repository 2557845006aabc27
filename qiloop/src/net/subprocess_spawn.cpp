// net/subprocess_spawn.cpp — spawn(): the child's standard streams, fds,
// environment and attributes as posix_spawn file actions and attributes.
#include "net/subprocess_spawn.h"

#include <qiloop/errors.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <string>
#include <string_view>

extern char** environ;

namespace qi::detail {

namespace {

// posix_spawn's setters report errors as results.
void check(int err, const char* api, const char* what) {
  if (err != 0) qi::throw_os_error(err, std::string(api) + ": " + what);
}

void refuse_nul(std::string_view s, const char* api, const char* what) {
  if (s.find('\0') != std::string_view::npos)
    throw qi::ValueError(std::string(api) + ": " + what + " contains a NUL byte, which the C strings of exec cannot carry");
}

// RAII for posix_spawn's two objects.
struct Actions {
  posix_spawn_file_actions_t fa;
  Actions() { posix_spawn_file_actions_init(&fa); }
  ~Actions() { posix_spawn_file_actions_destroy(&fa); }
};
struct Attributes {
  posix_spawnattr_t attr;
  Attributes() { posix_spawnattr_init(&attr); }
  ~Attributes() { posix_spawnattr_destroy(&attr); }
};

void check_options(const char* api, const SubprocessOptions& o) {
  const Stdio* streams[3] = {&o.std_in, &o.std_out, &o.std_err};
  static constexpr const char* kNames[3] = {"std_in", "std_out", "std_err"};
  for (int i = 0; i < 3; ++i) {
    if (i < 2 && streams[i]->kind() == Stdio::Kind::kStdout)
      throw qi::ValueError(std::string(api) + ": " + kNames[i] + " = qi::STDOUT; only std_err can go where std_out goes");
    if (streams[i]->kind() == Stdio::Kind::kFd && streams[i]->fd() < 0)
      throw qi::ValueError(std::string(api) + ": " + kNames[i] + " = fd " + std::to_string(streams[i]->fd()) +
                           "; give an open file descriptor, or qi::PIPE / DEVNULL / INHERIT");
  }
  for (int fd : o.pass_fds)
    if (fd < 3)
      throw qi::ValueError(std::string(api) + ": pass_fds holds " + std::to_string(fd) +
                           "; 0, 1 and 2 are the std_in / std_out / std_err options' to set");
  if (o.cwd) {
    refuse_nul(*o.cwd, api, "cwd");
    struct stat st;
    // The same errno the child's chdir would meet, but naming the directory
    // rather than the program.
    if (::stat(o.cwd->c_str(), &st) < 0) qi::throw_os_error(errno, std::string(api) + ": cwd '" + *o.cwd + "'");
    if (!S_ISDIR(st.st_mode)) qi::throw_os_error(ENOTDIR, std::string(api) + ": cwd '" + *o.cwd + "'");
  }
}

// "NAME=value" strings: env (or ours), then env_extra over them.
std::vector<std::string> environment(const char* api, const SubprocessOptions& o) {
  std::vector<std::string> out;
  auto entry = [api](const std::string& k, const std::string& v) {
    if (k.empty() || k.find('=') != std::string::npos)
      throw qi::ValueError(std::string(api) + ": environment variable name '" + k + "' is empty or holds '='");
    refuse_nul(k, api, "an environment variable name");
    refuse_nul(v, api, ("environment variable " + k).c_str());
    return k + "=" + v;
  };
  if (o.env)
    for (const auto& [k, v] : *o.env) out.push_back(entry(k, v));
  else
    for (char** e = environ; *e; ++e) out.emplace_back(*e);
  for (const auto& kv : o.env_extra) {
    const std::string& k = kv.first;  // a plain reference: clang 14 cannot capture a structured binding
    std::string e = entry(k, kv.second);
    auto same = std::find_if(out.begin(), out.end(), [&](const std::string& x) {
      return x.size() > k.size() && x.compare(0, k.size(), k) == 0 && x[k.size()] == '=';
    });
    if (same != out.end())
      *same = std::move(e);
    else
      out.push_back(std::move(e));
  }
  return out;
}

// os.get_exec_path: the child's PATH, else the default search path.
std::string search_path(const std::vector<std::string>& env) {
  for (const std::string& e : env)
    if (e.starts_with("PATH=")) return e.substr(5);
  return "/bin:/usr/bin";
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// A source the file actions can dup2 onto `target` without clobbering one
// still to be read: above 2, or target itself (a parent whose 0, 1 or 2 was
// closed gets those numbers from pipe2).
int safe_source(int fd, int target, std::vector<OwnedFd>& temps, const char* api) {
  if (fd == target || fd > 2) return fd;
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) qi::throw_os_error(errno, std::string(api) + ": fd " + std::to_string(fd));
  temps.emplace_back(copy);
  return copy;
}

// The child's standard streams; our ends of the pipes into `spawned`.
void plan_streams(const char* api, const SubprocessOptions& o, Actions& a, Spawned& spawned,
                  std::vector<OwnedFd>& temps) {
  const Stdio* streams[3] = {&o.std_in, &o.std_out, &o.std_err};
  for (int target = 0; target < 3; ++target) {
    const Stdio& s = *streams[target];
    switch (s.kind()) {
      case Stdio::Kind::kInherit: break;
      case Stdio::Kind::kPipe: {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) < 0) qi::throw_os_error(errno, std::string(api) + ": pipe2");
        OwnedFd read_end(fds[0]), write_end(fds[1]);
        OwnedFd& child_end = target == 0 ? read_end : write_end;
        int src = safe_source(child_end.get(), target, temps, api);
        temps.push_back(std::move(child_end));
        spawned.parent_ends[target] = std::move(target == 0 ? write_end : read_end);
        check(posix_spawn_file_actions_adddup2(&a.fa, src, target), api, "posix_spawn_file_actions_adddup2");
        break;
      }
      case Stdio::Kind::kDevNull:
        check(posix_spawn_file_actions_addopen(&a.fa, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0), api,
              "posix_spawn_file_actions_addopen");
        break;
      case Stdio::Kind::kStdout:
        check(posix_spawn_file_actions_adddup2(&a.fa, 1, 2), api, "posix_spawn_file_actions_adddup2");
        break;
      case Stdio::Kind::kFd: {
        if (::fcntl(s.fd(), F_GETFD) < 0) qi::throw_os_error(errno, std::string(api) + ": fd " + std::to_string(s.fd()));
        // dup2(fd, fd) clears close-on-exec (glibc 2.29+).
        int src = safe_source(s.fd(), target, temps, api);
        check(posix_spawn_file_actions_adddup2(&a.fa, src, target), api, "posix_spawn_file_actions_adddup2");
        break;
      }
    }
  }
}

// pass_fds made inheritable, then everything else above 2 closed.
void plan_fds(const char* api, const SubprocessOptions& o, Actions& a) {
  std::vector<int> keep = o.pass_fds;
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  for (int fd : keep) {
    if (::fcntl(fd, F_GETFD) < 0) qi::throw_os_error(errno, std::string(api) + ": pass_fds' fd " + std::to_string(fd));
    check(posix_spawn_file_actions_adddup2(&a.fa, fd, fd), api, "posix_spawn_file_actions_adddup2");
  }
  if (!o.close_fds) return;
  int from = 3;
  for (int fd : keep) {
    // A close of an fd that is not open is no error in glibc's child.
    for (; from < fd; ++from)
      check(posix_spawn_file_actions_addclose(&a.fa, from), api, "posix_spawn_file_actions_addclose");
    from = fd + 1;
  }
  check(posix_spawn_file_actions_addclosefrom_np(&a.fa, from), api, "posix_spawn_file_actions_addclosefrom_np");
}

void plan_attributes(const char* api, const SubprocessOptions& o, Attributes& at) {
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  // Python's restore_signals: a parent ignoring SIGPIPE (most servers,
  // qiloop's tests) must not hand that to `cat` or `yes`.
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  check(posix_spawnattr_setsigmask(&at.attr, &none), api, "posix_spawnattr_setsigmask");
  check(posix_spawnattr_setsigdefault(&at.attr, &defaults), api, "posix_spawnattr_setsigdefault");
  if (o.start_new_session) flags |= POSIX_SPAWN_SETSID;
  if (o.process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    check(posix_spawnattr_setpgroup(&at.attr, *o.process_group), api, "posix_spawnattr_setpgroup");
  }
  check(posix_spawnattr_setflags(&at.attr, flags), api, "posix_spawnattr_setflags");
}

// execvp's search, over the child's PATH: ENOENT and ENOTDIR try the next
// directory, EACCES too but is remembered; anything else stops. Names that
// exist nowhere cost no clone.
int spawn_searching(pid_t* pid, const std::string& program, const Actions& a, const Attributes& at, char* const* argv,
                    char* const* envp, const std::string& path) {
  if (program.find('/') != std::string::npos) return posix_spawn(pid, program.c_str(), &a.fa, &at.attr, argv, envp);
  int result = ENOENT;
  std::string_view dirs = path;
  for (;;) {
    std::size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + program;
    if (::access(candidate.c_str(), F_OK) == 0) {
      int err = posix_spawn(pid, candidate.c_str(), &a.fa, &at.attr, argv, envp);
      if (err == 0) return 0;
      if (err == EACCES)
        result = EACCES;
      else if (err != ENOENT && err != ENOTDIR)
        return err;
    }
    if (colon == std::string_view::npos) return result;
    dirs.remove_prefix(colon + 1);
  }
}

}  // namespace

Spawned spawn(const char* api, const std::string& program, const std::vector<std::string>& argv,
              const SubprocessOptions& options) {
  check_options(api, options);
  refuse_nul(program, api, "the program");
  for (const std::string& arg : argv) refuse_nul(arg, api, "an argument");
  std::vector<std::string> env = environment(api, options);
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv = c_strings(args), c_env = c_strings(env);

  Spawned spawned;
  std::vector<OwnedFd> temps;  // the child's ends: closed here once it has them
  Actions actions;
  Attributes attributes;
  if (options.cwd)
    check(posix_spawn_file_actions_addchdir_np(&actions.fa, options.cwd->c_str()), api,
          "posix_spawn_file_actions_addchdir_np");
  plan_streams(api, options, actions, spawned, temps);
  plan_fds(api, options, actions);
  plan_attributes(api, options, attributes);
  int err = spawn_searching(&spawned.pid, program, actions, attributes, c_argv.data(), c_env.data(), search_path(env));
  if (err != 0) qi::throw_os_error(err, std::string(api) + ": cannot run '" + program + "'");
  return spawned;
}

}  // namespace qi::detail
