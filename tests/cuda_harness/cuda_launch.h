// cuda_launch.h -- the launcher of a host-built kernel (included after the .cu by the generated
// wrapper): launch(kernel, grid, block, args) unpacks void** args into the kernel's own
// parameter types (as cuLaunchKernel does) and runs every block through tn::run_grid;
// signature(kernel) names those types for the Python side's argument check.
#pragma once
#include <functional>
#include <string>
#include <utility>

namespace tn {
int run_grid(const unsigned* grid, const unsigned* block, const std::function<void()>& body);

template <typename T> struct TypeName { static constexpr const char* value = "?"; };
template <> struct TypeName<float> { static constexpr const char* value = "float32"; };
template <> struct TypeName<double> { static constexpr const char* value = "float64"; };
template <> struct TypeName<int> { static constexpr const char* value = "int32"; };
template <> struct TypeName<unsigned int> { static constexpr const char* value = "uint32"; };
template <> struct TypeName<long long> { static constexpr const char* value = "int64"; };
template <> struct TypeName<unsigned long long> { static constexpr const char* value = "uint64"; };
template <> struct TypeName<long> { static constexpr const char* value = "int64"; };
template <> struct TypeName<unsigned long> { static constexpr const char* value = "uint64"; };
template <> struct TypeName<bool> { static constexpr const char* value = "bool"; };
template <> struct TypeName<short> { static constexpr const char* value = "int16"; };
template <> struct TypeName<signed char> { static constexpr const char* value = "int8"; };
template <> struct TypeName<unsigned char> { static constexpr const char* value = "uint8"; };

// "float32" for a float parameter, "*float32" for a float* (const or not).
template <typename P> std::string param_name() {
    using V = std::remove_cv_t<std::remove_reference_t<P>>;
    if constexpr (std::is_pointer<V>::value) {
        return std::string("*") + TypeName<std::remove_cv_t<std::remove_pointer_t<V>>>::value;
    } else {
        return TypeName<V>::value;
    }
}

template <typename... P> std::string signature(void (*)(P...)) {
    std::string s;
    ((s += param_name<P>() + ","), ...);
    return s;
}

template <typename... P, std::size_t... I>
void call_with(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<P>>*>(args[I])...);
}

template <typename... P>
int launch(void (*kernel)(P...), const unsigned* grid, const unsigned* block, void** args) {
    return run_grid(grid, block, [=] { call_with(kernel, args, std::index_sequence_for<P...>{}); });
}
}  // namespace tn
