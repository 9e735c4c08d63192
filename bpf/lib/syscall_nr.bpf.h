/* SPDX-License-Identifier: Apache-2.0 */
/* Syscall numbers and argument registers for the sys_enter/sys_exit BTF
 * tracepoints, per architecture. At sys_exit the argument registers in
 * pt_regs still hold the caller's values (only the return register changed;
 * arm64 keeps the first argument in orig_x0), so exit reads the arguments
 * back instead of stashing them at entry. */
#ifndef SONDE_LIB_SYSCALL_NR_BPF_H
#define SONDE_LIB_SYSCALL_NR_BPF_H

#if defined(__TARGET_ARCH_x86)
#define SONDE_NR_read 0
#define SONDE_NR_write 1
#define SONDE_NR_close 3
#define SONDE_NR_readv 19
#define SONDE_NR_writev 20
#define SONDE_NR_sendfile 40
#define SONDE_NR_connect 42
#define SONDE_NR_accept 43
#define SONDE_NR_sendto 44
#define SONDE_NR_recvfrom 45
#define SONDE_NR_sendmsg 46
#define SONDE_NR_recvmsg 47
#define SONDE_NR_accept4 288
#define SONDE_NR_recvmmsg 299
#define SONDE_NR_sendmmsg 307
#define SONDE_SYSCALL_NR(regs) ((long)(regs)->orig_ax)
#define SONDE_SYSCALL_ARG0(regs) ((regs)->di)
#define SONDE_SYSCALL_ARG1(regs) ((regs)->si)
#define SONDE_SYSCALL_ARG2(regs) ((regs)->dx)
#define SONDE_SYSCALL_ARG3(regs) ((regs)->r10)
#define SONDE_SYSCALL_ARG4(regs) ((regs)->r8)
#elif defined(__TARGET_ARCH_arm64)
/* asm-generic/unistd.h */
#define SONDE_NR_close 57
#define SONDE_NR_read 63
#define SONDE_NR_write 64
#define SONDE_NR_readv 65
#define SONDE_NR_writev 66
#define SONDE_NR_sendfile 71
#define SONDE_NR_accept 202
#define SONDE_NR_connect 203
#define SONDE_NR_sendto 206
#define SONDE_NR_recvfrom 207
#define SONDE_NR_sendmsg 211
#define SONDE_NR_recvmsg 212
#define SONDE_NR_accept4 242
#define SONDE_NR_recvmmsg 243
#define SONDE_NR_sendmmsg 269
#define SONDE_SYSCALL_NR(regs) ((long)(regs)->syscallno)
#define SONDE_SYSCALL_ARG0(regs) ((regs)->orig_x0)
#define SONDE_SYSCALL_ARG1(regs) ((regs)->regs[1])
#define SONDE_SYSCALL_ARG2(regs) ((regs)->regs[2])
#define SONDE_SYSCALL_ARG3(regs) ((regs)->regs[3])
#define SONDE_SYSCALL_ARG4(regs) ((regs)->regs[4])
#else
#error "socket capture supports x86_64 and arm64"
#endif

#endif /* SONDE_LIB_SYSCALL_NR_BPF_H */
