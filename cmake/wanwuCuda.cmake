# The CUDA side of wanwu's CMake package, one file for the build tree (CMakeLists.txt) and the
# installed package (wanwuConfig.cmake), so a program built against an installed wanwu gets the
# GPU the same way wanwu's own tests do:
#
#   project(app LANGUAGES CXX CUDA)          # or enable_language(CUDA)
#   find_package(wanwu REQUIRED)
#   add_executable(app app.cpp)
#   target_link_libraries(app PRIVATE wanwu::wanwu)
#   wanwu_enable_cuda(app)                   # compiles kernels/ once into app, registers the backend
#
# wanwu_cuda_dependencies() finds the CUDA libraries and cuDNN 9 (CUDNN_ROOT, the toolkit, or a
# Python environment's nvidia/cudnn, where PyTorch's wheels put it) and makes the interface target
# wanwu::cuda_deps. wanwu_enable_cuda(<target>) calls it on first use; it needs the CUDA language
# enabled by the caller (CMake allows that only at directory scope) and the kernels directory in
# the global property WANWU_KERNELS_DIR.

macro(wanwu_cuda_dependencies)
  find_package(CUDAToolkit REQUIRED)
  set(WANWU_CUDNN_HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDNN_PATH} $ENV{CUDNN_PATH} "${CUDAToolkit_LIBRARY_ROOT}")
  if(NOT WANWU_CUDNN_LIBRARY)
    find_program(WANWU_PYTHON3 NAMES python3)
    if(WANWU_PYTHON3)
      execute_process(COMMAND "${WANWU_PYTHON3}" -c "import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) if nvidia.cudnn.__file__ else list(nvidia.cudnn.__path__)[0])"
        OUTPUT_VARIABLE WANWU_PY_CUDNN OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE WANWU_PY_CUDNN_RC)
      if(WANWU_PY_CUDNN_RC EQUAL 0 AND WANWU_PY_CUDNN)
        list(APPEND WANWU_CUDNN_HINTS "${WANWU_PY_CUDNN}")
      endif()
    endif()
  endif()
  find_path(WANWU_CUDNN_INCLUDE_DIR cudnn.h HINTS ${WANWU_CUDNN_HINTS} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(WANWU_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${WANWU_CUDNN_HINTS} "${CUDAToolkit_LIBRARY_DIR}"
    PATH_SUFFIXES lib lib64 lib/x64 lib/${CMAKE_LIBRARY_ARCHITECTURE})
  if(NOT WANWU_CUDNN_INCLUDE_DIR OR NOT WANWU_CUDNN_LIBRARY)
    message(FATAL_ERROR "wanwu's CUDA backend needs cuDNN 9 (cudnn.h and libcudnn); set CUDNN_ROOT "
                        "(found include: '${WANWU_CUDNN_INCLUDE_DIR}', library: '${WANWU_CUDNN_LIBRARY}')")
  endif()
  message(STATUS "wanwu: cuDNN ${WANWU_CUDNN_LIBRARY}, CUDA architectures ${CMAKE_CUDA_ARCHITECTURES}")

  add_library(wanwu_cuda_deps INTERFACE)
  add_library(wanwu::cuda_deps ALIAS wanwu_cuda_deps)
  target_link_libraries(wanwu_cuda_deps INTERFACE wanwu::wanwu CUDA::cudart CUDA::cublas CUDA::cublasLt
                        "${WANWU_CUDNN_LIBRARY}")
  target_include_directories(wanwu_cuda_deps INTERFACE "${WANWU_CUDNN_INCLUDE_DIR}")
  # Kernels use std::numeric_limits in device code (constexpr host functions); 186 is "unsigned
  # compared with zero", which the shared functors do on purpose for u8.
  # C++20 by flag: CMake 3.25 does not know the CUDA20 dialect of nvcc 12+.
  target_compile_options(wanwu_cuda_deps INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 --expt-relaxed-constexpr -diag-suppress=186>)
endmacro()

function(wanwu_enable_cuda target)
  get_property(kernels GLOBAL PROPERTY WANWU_KERNELS_DIR)
  if(NOT kernels OR NOT EXISTS "${kernels}/cuda_implementation.cuh")
    message(FATAL_ERROR "wanwu_enable_cuda(${target}): wanwu's CUDA kernels are not in this build or package "
                        "('${kernels}')")
  endif()
  if(NOT TARGET wanwu::cuda_deps)
    if(NOT CMAKE_CUDA_COMPILER_LOADED)
      message(FATAL_ERROR "wanwu_enable_cuda(${target}): enable the CUDA language first "
                          "(project(... LANGUAGES CXX CUDA) or enable_language(CUDA)); wanwu's own build "
                          "does that with WANWU_CUDA=AUTO|ON when nvcc is found")
    endif()
    wanwu_cuda_dependencies()
  endif()
  set(cu "${CMAKE_CURRENT_BINARY_DIR}/${target}_wanwu_cuda.cu")
  file(WRITE "${cu}.in" "#include \"${kernels}/cuda_implementation.cuh\"\n")
  configure_file("${cu}.in" "${cu}" COPYONLY)
  target_sources(${target} PRIVATE "${cu}")
  set_target_properties(${target} PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
  target_link_libraries(${target} PRIVATE wanwu::cuda_deps)
endfunction()
