#pragma once
// Where to probe an OpenSSL function so that the kernel never single-steps.
//
// A uprobe traps on an int3; the probed instruction must then run: the
// kernel emulates a few (conditional and relative jumps, nop) and executes
// every other one out of line with a single-step trap. On the development VM
// that single step costs several microseconds, most of a probed call. A
// uretprobe always needs the breakpoint on the function's first instruction
// (`sub $0x18,%rsp` in Debian's SSL_read: single-stepped). So when the code
// allows it, the TLS probes use two emulated instructions instead:
//  - entry: the first conditional/relative jump reached before the argument
//    registers the BPF side reads (rdi: SSL*, rsi: buffer, rcx: the _ex
//    length pointer) are written, on the straight-line prologue;
//  - exit: the last such jump before the function's only `ret`, when nothing
//    after it writes %rax and nothing jumps past it: every return passes it
//    with the result in %rax.
// Anything else (tail calls, several returns, indirect jumps, an argument
// register written first, undecodable bytes) gives no sites: the caller
// probes the entry and uses a uretprobe, as before. x86-64 only.
#include <cstdint>
#include <optional>
#include <span>

namespace sonde::tls {

struct ProbeSites {
  uint64_t entry = 0;  // offsets from the function's first byte
  uint64_t exit = 0;
};

// `code`: the function's bytes (its symbol's size), `address`: its virtual
// address (only for decoding relative targets).
std::optional<ProbeSites> FindProbeSites(std::span<const uint8_t> code, uint64_t address);

}  // namespace sonde::tls
