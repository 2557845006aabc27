# Installs the qiloop build into a fresh prefix, moves it (the package must be
# relocatable), then configures, builds and runs the consumer project.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${QILOOP_BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
file(RENAME ${WORK_DIR}/prefix ${WORK_DIR}/moved-prefix)
execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G Ninja
                        -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${WORK_DIR}/moved-prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
# Runs a consumer binary from the moved install tree; `what` names it in the failure.
function(run_consumer binary what)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env QT_QPA_PLATFORM=offscreen
                          LD_LIBRARY_PATH=${WORK_DIR}/moved-prefix/lib:${WORK_DIR}/moved-prefix/lib/x86_64-linux-gnu
                          ${WORK_DIR}/build/${binary}
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${what} failed: ${rc}")
  endif()
endfunction()
run_consumer(consumer "the consumer")
run_consumer(consumer_test "the consumer's QILOOP_TEST")
