// Result<T>: a value or an error that says which file and what went wrong (no exceptions).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace molt {

struct Error {
    std::string file;     // the input the error is about; may be empty
    std::string message;  // one line a person can act on
    std::string to_string() const { return file.empty() ? message : file + ": " + message; }
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_state(std::move(value)) {}
    Result(Error error) : m_state(std::move(error)) {}

    bool ok() const { return std::holds_alternative<T>(m_state); }
    explicit operator bool() const { return ok(); }
    T &value() { return std::get<T>(m_state); }
    const T &value() const { return std::get<T>(m_state); }
    T &operator*() { return value(); }
    T *operator->() { return &value(); }
    const Error &error() const { return std::get<Error>(m_state); }

private:
    std::variant<T, Error> m_state;
};

// Returns the error of a failed Result from the calling function, so callers stay linear.
#define MOLT_TRY(var, expr)                         \
    auto var##_result = (expr);                     \
    if (!var##_result.ok())                         \
        return var##_result.error();                \
    auto &var = var##_result.value()

}  // namespace molt
