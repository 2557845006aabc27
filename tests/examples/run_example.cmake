# Runs one example program and checks what it did (ctest -P script).
#   -DEXE=<program> -DARGS=<arg|arg|...> -DEXPECTED=<file> [-DPNG=<file>] [-DTIMEOUT=<s>]
# EXPECTED holds one regular expression per line (blank lines and lines
# starting with "//" skipped); the program's stdout must have exactly as many
# lines, each matching its expression whole. The program must exit 0 and
# report nothing through qiloop's logging category (the test sets
# QT_MESSAGE_PATTERN so that such lines start with "qiloop:"): a leaked task
# or an unretrieved exception fails the test. PNG, when given, must be
# written by the program as a PNG file.
cmake_minimum_required(VERSION 3.25)
if(NOT DEFINED TIMEOUT)
  set(TIMEOUT 30)
endif()
string(REPLACE "|" ";" args "${ARGS}")
if(PNG)
  file(REMOVE "${PNG}")
endif()

execute_process(COMMAND "${EXE}" ${args}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT ${TIMEOUT})
message("--- stdout\n${out}--- stderr\n${err}---")
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "${EXE} ${args}: exit status ${rc}")
endif()
if(err MATCHES "(^|\n)qiloop:")
  message(FATAL_ERROR "qiloop reported a problem on stderr (lines starting with \"qiloop:\")")
endif()

file(STRINGS "${EXPECTED}" patterns ENCODING UTF-8)
list(FILTER patterns EXCLUDE REGEX "^(//.*)?$")
string(REGEX REPLACE "\n$" "" out "${out}")
# One list item per line: escape what CMake lists treat specially first.
string(REPLACE ";" "\\;" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
list(LENGTH patterns want)
list(LENGTH lines got)
if(NOT want EQUAL got)
  message(FATAL_ERROR "expected ${want} lines of output, got ${got}")
endif()
foreach(i RANGE 1 ${want})
  math(EXPR k "${i} - 1")
  list(GET patterns ${k} pattern)
  list(GET lines ${k} line)
  if(NOT line MATCHES "^${pattern}$")
    message(FATAL_ERROR "line ${i}: \"${line}\" does not match \"${pattern}\"")
  endif()
endforeach()

if(PNG)
  if(NOT EXISTS "${PNG}")
    message(FATAL_ERROR "no screenshot written to ${PNG}")
  endif()
  file(READ "${PNG}" magic LIMIT 8 HEX)
  if(NOT magic STREQUAL "89504e470d0a1a0a")
    message(FATAL_ERROR "${PNG} is not a PNG file (starts with ${magic})")
  endif()
endif()
