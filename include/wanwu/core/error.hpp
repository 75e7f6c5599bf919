// Errors. Library code reports every failure by throwing a typed exception whose message names
// the op, the shapes, dtypes and devices involved (DESIGN D10). It never calls exit/abort: a
// library must let its caller recover, log, or retry with a smaller batch. The subclasses let a
// caller tell "you passed the wrong shape" from "the file is corrupt" without parsing strings.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace wanwu {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error {  // incompatible or invalid shapes
 public:
  using Error::Error;
};
class DTypeError : public Error {  // unsupported or mismatched dtypes
 public:
  using Error::Error;
};
class DeviceError : public Error {  // tensors on different devices, missing backend
 public:
  using Error::Error;
};
class IndexError : public Error {  // index or dimension out of range
 public:
  using Error::Error;
};
class ValueError : public Error {  // an argument value that makes no sense
 public:
  using Error::Error;
};
class AutogradError : public Error {  // graph misuse: in-place on saved tensors, double backward
 public:
  using Error::Error;
};
class IOError : public Error {  // files: unreadable, truncated, hostile
 public:
  using Error::Error;
};
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace wanwu

// WANWU_CHECK(cond, parts...) throws wanwu::Error with the parts streamed together;
// WANWU_CHECK_T(Type, cond, parts...) throws the given subclass.
#define WANWU_CHECK_T(ErrType, cond, ...)                                      \
  do {                                                                         \
    if (!(cond)) [[unlikely]]                                                  \
      throw ErrType(::wanwu::detail::str(__VA_ARGS__));                        \
  } while (0)
#define WANWU_CHECK(cond, ...) WANWU_CHECK_T(::wanwu::Error, cond, __VA_ARGS__)
#define WANWU_CHECK_SHAPE(cond, ...) WANWU_CHECK_T(::wanwu::ShapeError, cond, __VA_ARGS__)
#define WANWU_CHECK_DTYPE(cond, ...) WANWU_CHECK_T(::wanwu::DTypeError, cond, __VA_ARGS__)
#define WANWU_CHECK_INDEX(cond, ...) WANWU_CHECK_T(::wanwu::IndexError, cond, __VA_ARGS__)
#define WANWU_CHECK_VALUE(cond, ...) WANWU_CHECK_T(::wanwu::ValueError, cond, __VA_ARGS__)
