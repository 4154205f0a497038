// InstallLmdbFaultReporter: a last line of defence for a damaged store file.
//
// LMDB keeps no checksums and trusts its pages: a damaged B-tree page makes
// liblmdb follow offsets into wild memory, and the process dies of SIGSEGV
// or SIGBUS. Opening a store checks the main tree, and `hashfs verify` and
// `gc` check every tree first (lmdb_check.h), but other commands read the
// trees through liblmdb directly. With the reporter installed, a memory
// fault whose call stack is inside liblmdb prints one line naming the likely
// cause and what to run, then exits with `exit_code`. Any other fault keeps
// its previous handling (a core dump, or a sanitizer's report).
//
// Process-wide; call once, early in main, before threads start.
#pragma once

namespace hashfs {

void InstallLmdbFaultReporter(int exit_code);

}  // namespace hashfs
