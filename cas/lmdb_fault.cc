#include "cas/lmdb_fault.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <lmdb.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

namespace hashfs {

namespace {

// Executable segments of liblmdb, found once at install time so that the
// handler only compares integers.
struct Range {
  uintptr_t begin = 0, end = 0;
};
Range g_lmdb_code[4];
int g_lmdb_ranges = 0;
int g_exit_code = 1;
struct sigaction g_prev_segv, g_prev_bus;

int FindSegments(dl_phdr_info* info, size_t, void* want_base) {
  if (info->dlpi_addr != reinterpret_cast<uintptr_t>(want_base)) return 0;
  for (int i = 0; i < info->dlpi_phnum && g_lmdb_ranges < 4; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    g_lmdb_code[g_lmdb_ranges++] = {info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz};
  }
  return 1;
}

bool InLmdb(uintptr_t pc) {
  for (int i = 0; i < g_lmdb_ranges; i++)
    if (pc >= g_lmdb_code[i].begin && pc < g_lmdb_code[i].end) return true;
  return false;
}

uintptr_t FaultPc(void* uctx) {
  auto* uc = static_cast<ucontext_t*>(uctx);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

void OnFault(int sig, siginfo_t* info, void* uctx) {
  // The faulting instruction, then a few callers: liblmdb may fault inside
  // libc (memcmp of a key at a wild offset) on its behalf.
  bool lmdb = InLmdb(FaultPc(uctx));
  if (!lmdb) {
    void* frames[12];
    const int n = backtrace(frames, 12);  // loaded at install time: no allocation here
    for (int i = 0; i < n && !lmdb; i++) lmdb = InLmdb(reinterpret_cast<uintptr_t>(frames[i]));
  }
  if (lmdb && info->si_code > 0) {
    static const char kMsg[] =
        "hashfs: memory fault inside LMDB while reading the store: its data.mdb is damaged "
        "(LMDB keeps no checksums); 'hashfs verify' names the damaged pages\n";
    (void)!write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    _exit(g_exit_code);
  }
  // Not ours: the previous handling, for this fault (which recurs when the
  // instruction is retried) or for a signal sent by a process.
  sigaction(sig, sig == SIGBUS ? &g_prev_bus : &g_prev_segv, nullptr);
  if (info->si_code <= 0) raise(sig);
}

}  // namespace

void InstallLmdbFaultReporter(int exit_code) {
  g_exit_code = exit_code;
  Dl_info dl;
  if (dladdr(reinterpret_cast<void*>(&mdb_cursor_get), &dl) == 0 || dl.dli_fbase == nullptr) return;
  // dlpi_addr is the load bias; for a shared object it equals dli_fbase.
  dl_iterate_phdr(FindSegments, dl.dli_fbase);
  if (g_lmdb_ranges == 0) return;
  void* warm[1];
  (void)backtrace(warm, 1);  // loads the unwinder now, not inside the handler
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnFault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_prev_segv);
  sigaction(SIGBUS, &sa, &g_prev_bus);
}

}  // namespace hashfs
