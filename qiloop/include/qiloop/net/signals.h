// -----------------------------------------------------------------------------
// File: qiloop/net/signals.h
// -----------------------------------------------------------------------------
//
// Unix signals as loop callbacks (asyncio's loop.add_signal_handler /
// remove_signal_handler), and Ctrl+C in qi::run (asyncio.Runner's).
//
//   qi::run([]() -> qi::Coro<void> {
//     auto& loop = qi::get_running_loop();
//     qi::Event reload;
//     loop.add_signal_handler(SIGHUP, [&] { reload.set(); });   // a plain callback
//     loop.add_signal_handler(SIGTERM, [t = qi::current_task()] { t.cancel("SIGTERM"); });
//     for (;;) {
//       co_await reload.wait();
//       reload.clear();
//       reread_configuration();
//     }
//   }());                  // Ctrl+C: the task is cancelled, qi::run throws qi::KeyboardInterrupt
//
// The members are QiEventLoop's (declared in <qiloop/event_loop.h>, block
// "Unix signals"); this header holds their contract.
//
// Delivery. The signal's disposition becomes a handler that only writes the
// signal number, one byte, to a non-blocking pipe the loop watches
// (add_reader). The loop reads it and runs the handler as an ordinary
// callback on the loop's thread, never inside the signal handler: it may do
// anything a callback may (schedule, create tasks, cancel, throw). Whatever
// thread the kernel picks for the signal (the loop's, Qt's, a worker's), it
// reaches the loop. A signalfd is not used because it needs the signal
// blocked in every thread, which threads started by Qt or by the
// application do not do.
//
// How often. One handler run per delivery the kernel makes: raise(sig) on
// any thread is one delivery, so 1000 raise() calls run the handler 1000
// times. The kernel itself merges a standard signal sent again while it is
// still pending (kill() from other threads or processes in a burst): then the
// handler runs at least once per burst, as in asyncio. Deliveries beyond the
// pipe's 64 KiB not yet read are merged the same way.
//
// Ordering. Handlers run in the order the deliveries reached the pipe, one
// callback each, on the iteration after the loop read them (as any
// call_soon). A delivery runs the handler set when its turn comes: one
// replaced meanwhile runs the new handler; after remove_signal_handler(sig)
// returns, no handler runs for sig, even for deliveries already read.
// Handlers added before the loop runs take effect at once: what arrives
// meanwhile waits in the pipe and runs when the loop does.
//
// Errors. An exception escaping a handler goes to the loop's exception
// handler, like any callback's; the handler stays installed.
//
// One loop per signal. The disposition of a signal belongs to the process,
// so at most one loop handles a given signal at a time; a second loop asking
// for it gets qi::RuntimeError naming the owner's thread. Loops on different
// threads may handle different signals. (asyncio allows signal handlers only
// on the main thread's loop; qiloop allows any thread, one owner per
// signal.)
//
// Dispositions. The first add_signal_handler(sig) of a loop saves sig's
// disposition; remove_signal_handler(sig), and close() for every signal the
// loop still handles, put that one back. For a signal nobody had touched
// that is SIG_DFL, as in asyncio (whose SIGINT default, Python's
// default_int_handler, is SIG_DFL in C++); a signal the application had
// ignored (SIG_IGN) or handled itself gets that back. The handler is
// installed with SA_RESTART, so system calls on other threads are not
// interrupted with EINTR by it.
//
// Thread-safety and re-entrancy. add_signal_handler and remove_signal_handler
// are for the loop's thread (qi::RuntimeError from another; another thread
// uses call_soon_threadsafe). Both may be called from any callback,
// including a signal handler replacing or removing itself.
//
// What throws. add_signal_handler: qi::ValueError for a number outside
// [1, NSIG); qi::RuntimeError for SIGKILL, SIGSTOP and the signals the C
// library reserves (they cannot be caught), on a closed loop, off the loop's
// thread, when another loop owns the signal, or when the pipe cannot be
// made; std::invalid_argument for an empty callable. A callable returning
// qi::Coro does not compile (as for call_soon: create a task from the
// handler). remove_signal_handler: qi::ValueError for a number out of range,
// qi::RuntimeError off the loop's thread; false when there was no handler.
//
// Ctrl+C in qi::run (asyncio.Runner). While qi::run runs its main task on
// the process's main thread and SIGINT had its default disposition (SIG_DFL)
// when qi::run began:
// - the first SIGINT cancels the main task;
// - if the main task then ends with qi::CancelledError (its clean-up ran;
//   it did not take the cancellation back), qi::run throws
//   qi::KeyboardInterrupt (<qiloop/errors.h>; not a std::exception, as
//   Python's is a BaseException and as qi::CancelledError);
// - a second SIGINT meanwhile has the default disposition again (the
//   kernel resets it on the first delivery, SA_RESETHAND): the process dies
//   of SIGINT, as a second Ctrl+C in Python ends asyncio.run, even when the
//   loop is stuck;
// - when the main task is done, SIGINT gets its disposition back before
//   qi::run shuts the loop down (leftover tasks are cancelled with SIGINT at
//   its default again).
// A handler the program sets for SIGINT with add_signal_handler replaces
// qi::run's, as in asyncio. QiRunner (attached mode) has no main task and
// leaves SIGINT alone.
#pragma once

#include <qiloop/errors.h>
#include <qiloop/event_loop.h>

#include <csignal>
