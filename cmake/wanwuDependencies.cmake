# Dependencies of the wanwu::wanwu target, shared by the build tree and the installed package:
# Threads, OpenMP, a CBLAS, nlohmann/json (safetensors headers are JSON), and for the data
# pipeline zlib (gzip'd IDX files) and stb_image's header (decoding). The OpenMP build of
# OpenBLAS is preferred: its threads are OpenMP threads, so a GEMM called inside one of wanwu's
# parallel regions runs single-threaded instead of oversubscribing the cores, and only one thread
# pool spins.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(OpenMP COMPONENTS CXX)
find_dependency(nlohmann_json 3)
find_dependency(ZLIB)
if(NOT WANWU_STB_INCLUDE_DIR)
  find_path(WANWU_STB_INCLUDE_DIR NAMES stb/stb_image.h)
endif()
if(NOT WANWU_STB_INCLUDE_DIR)
  message(FATAL_ERROR "wanwu's data pipeline needs stb_image.h (Debian/Ubuntu: apt-get install libstb-dev; "
                      "scripts/setup-deps.sh installs it)")
endif()

if(NOT TARGET wanwu::openblas)
  if(NOT WANWU_BLAS_LIBRARY)
    find_library(WANWU_BLAS_LIBRARY NAMES openblas
      PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp /usr/lib64/openblas-openmp
      NO_DEFAULT_PATH)
  endif()
  if(NOT WANWU_BLAS_LIBRARY)
    find_library(WANWU_BLAS_LIBRARY NAMES openblas openblaso openblasp)
  endif()
  find_path(WANWU_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-openmp)
  if(NOT WANWU_BLAS_LIBRARY OR NOT WANWU_CBLAS_INCLUDE_DIR)
    message(FATAL_ERROR "wanwu needs OpenBLAS (library and cblas.h). On Debian/Ubuntu: "
                        "apt-get install libopenblas-openmp-dev (scripts/setup-deps.sh does this).")
  endif()
  add_library(wanwu::openblas INTERFACE IMPORTED)
  set_target_properties(wanwu::openblas PROPERTIES
    INTERFACE_LINK_LIBRARIES "${WANWU_BLAS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${WANWU_CBLAS_INCLUDE_DIR}")
endif()
