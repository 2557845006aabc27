# Builds one snippet target and checks the outcome. EXPECT: the phrases (a
# |-separated list) the compiler's output must all contain, for a snippet
# that must fail to compile; empty for one that must compile.
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
if(EXPECT STREQUAL "")
  if(rc)
    message(FATAL_ERROR "${TARGET} should compile but failed:\n${out}")
  endif()
  return()
endif()
if(NOT rc)
  message(FATAL_ERROR "${TARGET} compiled, but it must be refused with: ${EXPECT}")
endif()
string(REPLACE "|" ";" phrases "${EXPECT}")
foreach(phrase IN LISTS phrases)
  string(FIND "${out}" "${phrase}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${TARGET} failed to compile, but without \"${phrase}\" in the output:\n${out}")
  endif()
endforeach()
