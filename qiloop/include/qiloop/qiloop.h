// qiloop/qiloop.h — the whole public API of qiloop, in one include.
//
//   #include <qiloop/qiloop.h>
//   qi::Coro<int> answer() { co_await qi::sleep(0.01); co_return 42; }
//   int main(int argc, char** argv) {
//     QCoreApplication app(argc, argv);
//     return qi::run(answer()) == 42 ? 0 : 1;
//   }
//
// Where each part is described:
//   event_loop.h  QiEventLoop (scheduling, running, errors), qi::run,
//                 qi::create_task, qi::ExceptionContext
//   runner.h      QiRunner: attached mode inside app.exec()
//   coro.h        qi::Coro<T>, the coroutine type
//   task.h        qi::Task<T>, qi::sleep, qi::current_task
//   future.h      qi::Future<T>, qi::FutureRef, qi::TaskRef
//   handle.h      qi::Handle, qi::TimerHandle
//   clock.h       qi::Clock, the loop's source of "now"
//   call_graph.h  the await graph: qi::capture_call_graph, format/print_call_graph
//   errors.h      qi::RuntimeError, InvalidStateError, TimeoutError, CancelledError
//   sync/event.h, sync/lock.h, sync/semaphore.h, sync/condition.h, sync/barrier.h
//                 qi::Event, Lock (LockGuard), Semaphore, BoundedSemaphore, Condition, Barrier
//   sync/queue.h  qi::Queue, qi::PriorityQueue, qi::LifoQueue
//   structured/gather.h, outcome.h, wait.h, as_completed.h, shield.h
//                 qi::gather, gather_settled, Outcome, wait, as_completed, shield
//   structured/timeout.h     qi::timeout, timeout_at, Timeout, wait_for
//   structured/task_group.h  qi::TaskGroup
//   async_generator.h  qi::AsyncGenerator<T>: co_await and co_yield in one coroutine
//   qt/asyncslot.h   qi::asyncslot: coroutine slots
//   qt/bound_task.h  qi::create_task(coro, guard), qi::bind_task: tasks bound to a QObject
//   qt/modal.h       qi::modal: a modal call (nested QEventLoop) with the loop running under it
//   qt/asyncsignal.h, qt/signal_stream.h, qt/multisignal.h
//                 qi::asyncsignal, qi::signal_stream (SignalStream), qi::multisignal
//   threads/thread_pool_executor.h, executor.h, to_thread.h
//                 qi::ThreadPoolExecutor, qi::Executor, qi::to_thread (run_in_executor is on the loop)
//   qt/qfuture.h  co_await a QFuture<T> (QPromise, QtConcurrent::run) in any qi::Coro
//   threads/concurrent_future.h  qi::run_coroutine_threadsafe, ConcurrentFuture, wrap_future
//   threads/loop_thread.h  qi::LoopThread: a worker QThread running its own loop
//   net/signals.h  Unix signals: loop.add_signal_handler / remove_signal_handler, Ctrl+C in qi::run
//   net/address.h  qi::SocketAddress: IPv4, IPv6 and Unix socket addresses
//   net/socket.h   qi::AddrInfo and the contract of loop.sock_* and loop.getaddrinfo
//   net/protocols.h  qi::Protocol, qi::BufferedProtocol: what a transport calls
//   net/transport.h  qi::Transport, loop.create_connection / create_unix_connection
//   net/pipes.h    loop.connect_read_pipe / connect_write_pipe: pipes as qi::Transports
//   net/datagram.h qi::DatagramProtocol / DatagramTransport, loop.create_datagram_endpoint (UDP)
//   net/ssl.h      TLS: qi::SslContext, qi::SslTransport, loop.start_tls, ConnectOptions::ssl
//   net/streams.h    qi::StreamReader, qi::StreamWriter, qi::open_connection / open_unix_connection
//   net/server.h   qi::Server, loop.create_server / create_unix_server
//   net/subprocess.h qi::create_subprocess_exec / create_subprocess_shell, qi::Process
// The test kit is a separate target: <qiloop/testing.h> (docs/testing.md).
#pragma once

#include <qiloop/async_generator.h>
#include <qiloop/call_graph.h>
#include <qiloop/clock.h>
#include <qiloop/coro.h>
#include <qiloop/config.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>
#include <qiloop/runner.h>
#include <qiloop/sync/queue.h>
#include <qiloop/structured/as_completed.h>
#include <qiloop/structured/gather.h>
#include <qiloop/structured/outcome.h>
#include <qiloop/structured/shield.h>
#include <qiloop/structured/wait.h>
#include <qiloop/structured/task_group.h>
#include <qiloop/structured/timeout.h>
#include <qiloop/task.h>
#include <qiloop/threads/executor.h>
#include <qiloop/threads/thread_pool_executor.h>
#include <qiloop/threads/to_thread.h>
#include <qiloop/qt/qfuture.h>
#include <qiloop/threads/concurrent_future.h>
#include <qiloop/threads/loop_thread.h>
#include <qiloop/sync/barrier.h>
#include <qiloop/sync/condition.h>
#include <qiloop/sync/event.h>
#include <qiloop/sync/lock.h>
#include <qiloop/sync/semaphore.h>
#include <qiloop/qt/asyncslot.h>
#include <qiloop/qt/bound_task.h>
#include <qiloop/qt/modal.h>
#include <qiloop/qt/asyncsignal.h>
#include <qiloop/qt/multisignal.h>
#include <qiloop/qt/signal_stream.h>
#include <qiloop/net/signals.h>
#include <qiloop/net/address.h>
#include <qiloop/net/socket.h>
#include <qiloop/net/protocols.h>
#include <qiloop/net/transport.h>
#include <qiloop/net/pipes.h>
#include <qiloop/net/datagram.h>
#include <qiloop/net/ssl.h>
#include <qiloop/net/streams.h>
#include <qiloop/net/server.h>
#include <qiloop/net/subprocess.h>
