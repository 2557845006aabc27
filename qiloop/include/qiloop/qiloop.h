// qiloop/qiloop.h — the whole public API of qiloop.
#pragma once

#include <qiloop/clock.h>
#include <qiloop/coro.h>
#include <qiloop/config.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>
#include <qiloop/runner.h>
#include <qiloop/task.h>
