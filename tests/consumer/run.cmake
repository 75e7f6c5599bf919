# Builds and runs tests/consumer against wanwu twice: installed (find_package) and as a
# subdirectory. Invoked by CTest with -DWANWU_SOURCE_DIR, -DWORK_DIR, -DCMAKE_CXX_COMPILER, and
# -DCMAKE_CUDA_COMPILER when wanwu's build has CUDA: then the installed package's CUDA kernels are
# compiled into consumer_cuda by wanwu_enable_cuda() too (sm_90 only, as CI builds).
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

set(consumer_src "${CMAKE_CURRENT_LIST_DIR}")
file(REMOVE_RECURSE "${WORK_DIR}")
set(gen_args -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_BUILD_TYPE=Debug)

# 1. install wanwu into a private prefix, then find_package it
run(${CMAKE_COMMAND} -S "${WANWU_SOURCE_DIR}" -B "${WORK_DIR}/wanwu-build" ${gen_args}
    -DWANWU_BUILD_TESTS=OFF -DWANWU_BUILD_EXAMPLES=OFF -DWANWU_BUILD_BENCHMARKS=OFF -DWANWU_CUDA=OFF
    -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install "${WORK_DIR}/wanwu-build")
run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/installed" ${gen_args}
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/installed")
run("${WORK_DIR}/installed/consumer")

# 1b. the installed CUDA kernels through wanwu_enable_cuda(); consumer_cuda checks the backend is
#     registered, and on a machine with a GPU that it computes what the CPU does
if(CMAKE_CUDA_COMPILER)
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/installed-cuda" ${gen_args}
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DWANWU_CONSUMER_CUDA=ON -DCMAKE_CUDA_COMPILER=${CMAKE_CUDA_COMPILER}
      -DCMAKE_CUDA_ARCHITECTURES=90)
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/installed-cuda" --target consumer_cuda)
  run("${WORK_DIR}/installed-cuda/consumer_cuda")
endif()

# 2. the source tree as a subdirectory
run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/subdir" ${gen_args} -DWANWU_SOURCE_DIR=${WANWU_SOURCE_DIR}
    -DWANWU_CUDA=OFF)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/subdir")
run("${WORK_DIR}/subdir/consumer")
