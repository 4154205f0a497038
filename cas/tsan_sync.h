// Happens-before edges for ThreadSanitizer across hand-offs it cannot see.
//
// libtbb is not built with TSan, so the ordering that task_group::wait() and
// parallel_for's join give is invisible to it: an access made in a task and
// a later access by the thread that waited look like a race. Call
// TsanRelease(tag) after the last access on one side and TsanAcquire(tag)
// before the first access on the other (same tag, any address); TSan then
// orders them as a mutex would. Releases on one tag accumulate, so many
// tasks may release a tag that one waiter acquires. Both are no-ops unless
// the build uses -fsanitize=thread. Thread-safe.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define HASHFS_TSAN_ENABLED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HASHFS_TSAN_ENABLED 1
#endif
#endif

#ifdef HASHFS_TSAN_ENABLED
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace hashfs {

inline void TsanRelease([[maybe_unused]] const void* tag) {
#ifdef HASHFS_TSAN_ENABLED
  __tsan_release(const_cast<void*>(tag));
#endif
}

inline void TsanAcquire([[maybe_unused]] const void* tag) {
#ifdef HASHFS_TSAN_ENABLED
  __tsan_acquire(const_cast<void*>(tag));
#endif
}

}  // namespace hashfs
