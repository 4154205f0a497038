// The root-owned mount (mounted by root, so allow_other + kernel permission
// checks) exercised by an unprivileged uid; read-only mounts and the .hashfs
// history view refuse every write with EROFS.
#include "fuse_test_util.h"

namespace fusetest {
namespace {

constexpr uid_t kUser = 65534;   // nobody
constexpr gid_t kGroup = 65534;  // nogroup
constexpr uid_t kOther = 65533;

class PermissionsTest : public FuseTest {
 protected:
  void SetUp() override {
    FuseTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // The layout, made by root.
    ASSERT_TRUE(WriteFile(P("secret"), "secret", 0600));
    ASSERT_TRUE(WriteFile(P("ro"), "readonly", 0644));
    ASSERT_EQ(mkdir(P("closed").c_str(), 0700), 0);
    ASSERT_TRUE(WriteFile(P("closed/inner"), "inner", 0644));
    ASSERT_EQ(mkdir(P("listonly").c_str(), 0744), 0);
    ASSERT_TRUE(WriteFile(P("listonly/file"), "l", 0644));
    ASSERT_EQ(mkdir(P("xonly").c_str(), 0711), 0);
    ASSERT_TRUE(WriteFile(P("xonly/known"), "known", 0644));
    ASSERT_EQ(mkdir(P("tmp").c_str(), 0777), 0);
    ASSERT_EQ(chmod(P("tmp").c_str(), 01777), 0);
    ASSERT_TRUE(WriteFile(P("tmp/rootfile"), "rootfile", 0666));
    ASSERT_EQ(chmod(P("tmp/rootfile").c_str(), 0666), 0);
    ASSERT_EQ(mkdir(P("tmp/rootdir").c_str(), 0777), 0);
    ASSERT_EQ(chmod(P("tmp/rootdir").c_str(), 0777), 0);
    ASSERT_EQ(mkdir(P("pub").c_str(), 0777), 0);
    ASSERT_EQ(chmod(P("pub").c_str(), 0777), 0);
  }

  std::string User(const std::function<std::string()>& fn, uid_t uid = kUser, gid_t gid = kGroup) {
    return AsUser(uid, gid, fn);
  }
};

// One line per attempted write: "what=ERRNO".
std::string TryWrites(const std::string& dir, const std::string& file, const std::string& subdir) {
  std::ostringstream o;
  auto rec = [&o](const char* what, long rc) { o << what << "=" << ErrOf(rc) << "\n"; };
  auto open_close = [](const std::string& p, int flags) -> long {
    int fd = open(p.c_str(), flags, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
  };
  rec("open_wronly", open_close(file, O_WRONLY));
  rec("open_rdwr", open_close(file, O_RDWR));
  rec("open_trunc", open_close(file, O_WRONLY | O_TRUNC));
  rec("open_append", open_close(file, O_WRONLY | O_APPEND));
  rec("create", open_close(dir + "/newfile", O_CREAT | O_WRONLY));
  rec("create_excl", open_close(dir + "/newfile2", O_CREAT | O_EXCL | O_RDONLY));
  rec("mkdir", mkdir((dir + "/newdir").c_str(), 0755));
  rec("mkfifo", mkfifo((dir + "/newfifo").c_str(), 0644));
  rec("symlink", symlink("x", (dir + "/newsl").c_str()));
  rec("link", link(file.c_str(), (dir + "/newlink").c_str()));
  rec("rename", rename(file.c_str(), (dir + "/renamed").c_str()));
  rec("unlink", unlink(file.c_str()));
  rec("rmdir", rmdir(subdir.c_str()));
  rec("chmod", chmod(file.c_str(), 0600));
  rec("chown", chown(file.c_str(), getuid(), getgid()));
  rec("truncate", truncate(file.c_str(), 0));
  rec("utimens", utimensat(AT_FDCWD, file.c_str(), nullptr, 0));
  rec("setxattr", setxattr(file.c_str(), "user.w", "1", 1, 0));
  rec("removexattr", removexattr(file.c_str(), "user.w"));
  return o.str();
}

std::string AllErrno(const std::string& err) {
  std::string s;
  for (const char* w : {"open_wronly", "open_rdwr", "open_trunc", "open_append", "create", "create_excl", "mkdir",
                        "mkfifo", "symlink", "link", "rename", "unlink", "rmdir", "chmod", "chown", "truncate",
                        "utimens", "setxattr", "removexattr"})
    s += std::string(w) + "=" + err + "\n";
  return s;
}

TEST_F(PermissionsTest, ErrnoConformanceAsUnprivilegedUser) {
  std::string r = User([&] {
    std::string d = P("pub/conf");
    if (mkdir(d.c_str(), 0755) != 0) return "mkdir " + d + ": " + ErrName(errno);
    return JoinLines(ErrnoConformance(d));
  });
  EXPECT_EQ(r, "");
}

TEST_F(PermissionsTest, FileAndDirectoryPermissions) {
  std::string r = User([&] {
    std::ostringstream o;
    auto rec = [&o](const char* what, long rc) { o << what << "=" << ErrOf(rc) << "\n"; };
    auto open_close = [](const std::string& p, int flags) -> long {
      int fd = open(p.c_str(), flags, 0644);
      if (fd < 0) return -1;
      close(fd);
      return 0;
    };
    struct stat st;
    rec("read_secret", open_close(P("secret"), O_RDONLY));
    o << "read_ro=" << ReadFile(P("ro")) << "\n";
    rec("write_ro", open_close(P("ro"), O_WRONLY));
    rec("rdwr_trunc_ro", open_close(P("ro"), O_RDWR | O_TRUNC));
    rec("truncate_ro", truncate(P("ro").c_str(), 0));
    rec("stat_closed_inner", stat(P("closed/inner").c_str(), &st));
    rec("opendir_closed", open_close(P("closed"), O_RDONLY | O_DIRECTORY));
    rec("create_in_closed", open_close(P("closed/new"), O_CREAT | O_WRONLY));
    {
      DIR* dp = opendir(P("listonly").c_str());
      std::string names;
      if (dp != nullptr) {
        while (auto* de = readdir(dp))
          if (de->d_name[0] != '.') names += de->d_name;
        closedir(dp);
      }
      o << "list_listonly=" << (dp ? names : "<" + ErrName(errno) + ">") << "\n";
    }
    rec("stat_listonly_file", stat(P("listonly/file").c_str(), &st));
    rec("opendir_xonly", open_close(P("xonly"), O_RDONLY | O_DIRECTORY));
    rec("stat_xonly_known", stat(P("xonly/known").c_str(), &st));
    o << "read_xonly_known=" << ReadFile(P("xonly/known")) << "\n";
    // The root directory is root's 0755.
    rec("create_in_root", open_close(P("new"), O_CREAT | O_WRONLY));
    rec("mkdir_in_root", mkdir(P("newdir").c_str(), 0755));
    rec("mkfifo_in_root", mkfifo(P("newfifo").c_str(), 0644));
    rec("symlink_in_root", symlink("x", P("newsl").c_str()));
    rec("unlink_ro", unlink(P("ro").c_str()));
    rec("rename_ro", rename(P("ro").c_str(), P("pub/stolen").c_str()));
    rec("rmdir_closed_inner_dir", rmdir(P("xonly").c_str()));
    // Symlink to something unreadable.
    rec("symlink_in_pub", symlink("../secret", P("pub/tosecret").c_str()));
    rec("read_via_symlink", open_close(P("pub/tosecret"), O_RDONLY));
    rec("link_into_root", link(P("pub/tosecret").c_str(), P("newlink").c_str()));
    // Own files work as usual, and owner bits apply to the owner.
    o << "own_write=" << (WriteFile(P("pub/own"), "mine") ? "OK" : ErrName(errno)) << "\n";
    o << "own_read=" << ReadFile(P("pub/own")) << "\n";
    {
      int fd = open(P("pub/own").c_str(), O_RDWR | O_APPEND);
      o << "own_append=" << ErrOf(fd >= 0 ? write(fd, "+", 1) : -1) << "\n";
      if (fd >= 0) close(fd);
    }
    o << "own_read2=" << ReadFile(P("pub/own")) << "\n";
    rec("own_chmod_0", chmod(P("pub/own").c_str(), 0));
    rec("own_open_0", open_close(P("pub/own"), O_RDONLY));
    rec("own_chmod_back", chmod(P("pub/own").c_str(), 0640));
    rec("own_mkdir", mkdir(P("pub/owndir").c_str(), 0700));
    rec("own_create_in_owndir", open_close(P("pub/owndir/f"), O_CREAT | O_WRONLY));
    rec("own_rename", rename(P("pub/owndir/f").c_str(), P("pub/owndir/g").c_str()));
    rec("own_unlink", unlink(P("pub/owndir/g").c_str()));
    rec("own_rmdir", rmdir(P("pub/owndir").c_str()));
    return o.str();
  });
  EXPECT_EQ(r,
            "read_secret=EACCES\n"
            "read_ro=readonly\n"
            "write_ro=EACCES\n"
            "rdwr_trunc_ro=EACCES\n"
            "truncate_ro=EACCES\n"
            "stat_closed_inner=EACCES\n"
            "opendir_closed=EACCES\n"
            "create_in_closed=EACCES\n"
            "list_listonly=file\n"
            "stat_listonly_file=EACCES\n"
            "opendir_xonly=EACCES\n"
            "stat_xonly_known=OK\n"
            "read_xonly_known=known\n"
            "create_in_root=EACCES\n"
            "mkdir_in_root=EACCES\n"
            "mkfifo_in_root=EACCES\n"
            "symlink_in_root=EACCES\n"
            "unlink_ro=EACCES\n"
            "rename_ro=EACCES\n"
            "rmdir_closed_inner_dir=EACCES\n"
            "symlink_in_pub=OK\n"
            "read_via_symlink=EACCES\n"
            "link_into_root=EACCES\n"
            "own_write=OK\n"
            "own_read=mine\n"
            "own_append=OK\n"
            "own_read2=mine+\n"
            "own_chmod_0=OK\n"
            "own_open_0=EACCES\n"
            "own_chmod_back=OK\n"
            "own_mkdir=OK\n"
            "own_create_in_owndir=OK\n"
            "own_rename=OK\n"
            "own_unlink=OK\n"
            "own_rmdir=OK\n");
  // Nothing root's changed.
  EXPECT_EQ(ReadFile(P("ro")), "readonly");
  EXPECT_EQ(ReadFile(P("secret")), "secret");
  struct stat st;
  ASSERT_EQ(stat(P("pub/own").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUser);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // Root is not bound by the bits.
  EXPECT_EQ(ReadFile(P("pub/own")), "mine+");
}

TEST_F(PermissionsTest, StickyDirectory) {
  std::string r = User([&] {
    std::ostringstream o;
    auto rec = [&o](const char* what, long rc) { o << what << "=" << ErrOf(rc) << "\n"; };
    o << "create_mine=" << (WriteFile(P("tmp/mine"), "m") ? "OK" : ErrName(errno)) << "\n";
    o << "create_mine2=" << (WriteFile(P("tmp/mine2"), "m2") ? "OK" : ErrName(errno)) << "\n";
    rec("unlink_mine2", unlink(P("tmp/mine2").c_str()));
    rec("unlink_root", unlink(P("tmp/rootfile").c_str()));
    rec("rename_root", rename(P("tmp/rootfile").c_str(), P("tmp/moved").c_str()));
    rec("rename_mine_over_root", rename(P("tmp/mine").c_str(), P("tmp/rootfile").c_str()));
    rec("rmdir_root", rmdir(P("tmp/rootdir").c_str()));
    {
      int fd = open(P("tmp/rootfile").c_str(), O_WRONLY | O_APPEND);
      rec("write_root_0666", fd >= 0 ? write(fd, "+u", 2) : -1);
      if (fd >= 0) close(fd);
    }
    rec("mkdir_in_rootdir", mkdir(P("tmp/rootdir/mine").c_str(), 0755));
    return o.str();
  });
  EXPECT_EQ(r,
            "create_mine=OK\n"
            "create_mine2=OK\n"
            "unlink_mine2=OK\n"
            "unlink_root=EPERM\n"
            "rename_root=EPERM\n"
            "rename_mine_over_root=EPERM\n"
            "rmdir_root=EPERM\n"
            "write_root_0666=OK\n"
            "mkdir_in_rootdir=OK\n");
  EXPECT_EQ(ReadFile(P("tmp/rootfile")), "rootfile+u");
  // Another unprivileged user cannot remove the first one's file either.
  std::string r2 = User(
      [&] {
        return ErrOf(unlink(P("tmp/mine").c_str())) + " " +
               ErrOf(rename(P("tmp/mine").c_str(), P("tmp/theirs").c_str()));
      },
      kOther, kOther);
  EXPECT_EQ(r2, "EPERM EPERM");
  // The owner of the directory may.
  ASSERT_EQ(chown(P("tmp").c_str(), kOther, kOther), 0);
  r2 = User([&] { return ErrOf(unlink(P("tmp/mine").c_str())); }, kOther, kOther);
  EXPECT_EQ(r2, "OK");
}

TEST_F(PermissionsTest, OwnershipAndModeChangesByNonOwner) {
  ASSERT_TRUE(WriteFile(P("pub/own"), "x"));
  ASSERT_EQ(chown(P("pub/own").c_str(), kUser, kGroup), 0);
  ASSERT_TRUE(WriteFile(P("pub/own_sg"), "x"));
  ASSERT_EQ(chown(P("pub/own_sg").c_str(), kUser, 0), 0);  // group the user is not in
  int protected_hardlinks = std::atoi(ReadFile("/proc/sys/fs/protected_hardlinks").c_str());
  std::string r = User([&] {
    std::ostringstream o;
    auto rec = [&o](const char* what, long rc) { o << what << "=" << ErrOf(rc) << "\n"; };
    rec("chown_own_to_root", chown(P("pub/own").c_str(), 0, static_cast<gid_t>(-1)));
    rec("chgrp_own_to_nonmember", chown(P("pub/own").c_str(), static_cast<uid_t>(-1), 0));
    rec("chgrp_own_to_own_group", chown(P("pub/own").c_str(), static_cast<uid_t>(-1), kGroup));
    rec("chown_own_noop", chown(P("pub/own").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
    rec("chown_root_file", chown(P("ro").c_str(), kUser, kGroup));
    rec("chmod_root_file", chmod(P("ro").c_str(), 0666));
    rec("chmod_own", chmod(P("pub/own").c_str(), 0604));
    rec("chmod_own_sg_setgid", chmod(P("pub/own_sg").c_str(), 02755));
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    rec("utimens_explicit_not_owner", utimensat(AT_FDCWD, P("tmp/rootfile").c_str(), ts, 0));
    rec("utimens_now_writable_not_owner", utimensat(AT_FDCWD, P("tmp/rootfile").c_str(), nullptr, 0));
    rec("utimens_now_not_writable", utimensat(AT_FDCWD, P("ro").c_str(), nullptr, 0));
    rec("utimens_explicit_own", utimensat(AT_FDCWD, P("pub/own").c_str(), ts, 0));
    rec("setxattr_root_file", setxattr(P("ro").c_str(), "user.x", "1", 1, 0));
    rec("setxattr_own", setxattr(P("pub/own").c_str(), "user.x", "1", 1, 0));
    rec("setxattr_trusted_own", setxattr(P("pub/own").c_str(), "trusted.x", "1", 1, 0));
    char buf[16];
    rec("getxattr_secret", getxattr(P("secret").c_str(), "user.x", buf, sizeof buf));
    rec("link_to_secret", link(P("secret").c_str(), P("pub/secret_link").c_str()));
    rec("link_to_own", link(P("pub/own").c_str(), P("pub/own_link").c_str()));
    return o.str();
  });
  EXPECT_EQ(r, std::string("chown_own_to_root=EPERM\n"
                           "chgrp_own_to_nonmember=EPERM\n"
                           "chgrp_own_to_own_group=OK\n"
                           "chown_own_noop=OK\n"
                           "chown_root_file=EPERM\n"
                           "chmod_root_file=EPERM\n"
                           "chmod_own=OK\n"
                           "chmod_own_sg_setgid=OK\n"
                           "utimens_explicit_not_owner=EPERM\n"
                           "utimens_now_writable_not_owner=OK\n"
                           "utimens_now_not_writable=EACCES\n"
                           "utimens_explicit_own=OK\n"
                           "setxattr_root_file=EACCES\n"
                           "setxattr_own=OK\n"
                           "setxattr_trusted_own=EPERM\n"
                           "getxattr_secret=EACCES\n") +
                   (protected_hardlinks ? "link_to_secret=EPERM\n" : "link_to_secret=OK\n") + "link_to_own=OK\n");
  struct stat st;
  ASSERT_EQ(stat(P("pub/own").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUser);
  EXPECT_EQ(st.st_gid, kGroup);
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000);
  ASSERT_EQ(stat(P("pub/own_sg").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u) << "setgid must be dropped for a non-member of the file's group";
  ASSERT_EQ(stat(P("ro").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST_F(PermissionsTest, SupplementaryGroupsGrantAccess) {
  ASSERT_TRUE(WriteFile(P("grp"), "group-readable", 0640));
  ASSERT_EQ(chown(P("grp").c_str(), 0, 777), 0);
  ASSERT_EQ(chmod(P("grp").c_str(), 0640), 0);
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return ReadFile(P("grp")); }, {777}), "group-readable");
  EXPECT_EQ(AsUser(kUser, kGroup, [&] { return ReadFile(P("grp")); }, {}), "<ERR:EACCES>");
  EXPECT_EQ(AsUser(kUser, 777, [&] { return ReadFile(P("grp")); }, {}), "group-readable");
  // Group bits are used, not other bits, even when they give less.
  ASSERT_EQ(chmod(P("grp").c_str(), 0604), 0);
  EXPECT_EQ(AsUser(kUser, 777, [&] { return ReadFile(P("grp")); }, {}), "<ERR:EACCES>");
}

TEST_F(PermissionsTest, ReadOnlyMountRefusesEveryWrite) {
  HASHFS_ONLY();
  ASSERT_TRUE(WriteFile(P("pub/userfile"), "u"));
  ASSERT_EQ(chown(P("pub/userfile").c_str(), kUser, kGroup), 0);
  ASSERT_EQ(mkdir(P("pub/userdir").c_str(), 0755), 0);
  ASSERT_EQ(chown(P("pub/userdir").c_str(), kUser, kGroup), 0);
  std::string ro = root_ + "/ro";
  ASSERT_TRUE(Mount(kVolume, ro, {"--read-only"}));
  EXPECT_EQ(ReadFile(ro + "/ro"), "readonly");
  EXPECT_EQ(ReadFile(ro + "/pub/userfile"), "u");
  EXPECT_EQ(TryWrites(ro + "/pub", ro + "/pub/userfile", ro + "/pub/userdir"), AllErrno("EROFS"));
  EXPECT_EQ(User([&] { return TryWrites(ro + "/pub", ro + "/pub/userfile", ro + "/pub/userdir"); }),
            AllErrno("EROFS"));
  // The read-write mount beside it still works and the ro one shows its changes after commit.
  ASSERT_TRUE(WriteFile(P("pub/later"), "later"));
  EXPECT_EQ(ReadFile(P("pub/userfile")), "u");
  ASSERT_TRUE(Unmount(ro));
}

TEST_F(PermissionsTest, HistoryViewRefusesEveryWrite) {
  HASHFS_ONLY();
  ASSERT_TRUE(WriteFile(P("pub/userfile"), "u"));
  ASSERT_EQ(chown(P("pub/userfile").c_str(), kUser, kGroup), 0);
  ASSERT_EQ(mkdir(P("pub/userdir").c_str(), 0755), 0);
  ASSERT_EQ(chown(P("pub/userdir").c_str(), kUser, kGroup), 0);
  auto ids = CommitIds();
  ASSERT_FALSE(ids.empty());
  ASSERT_EQ(Hashfs({"snapshot", "snap1", kVolume}).code, 0);
  for (const std::string& base : {P(".hashfs/history/" + ids[0]), P(".hashfs/snapshots/snap1")}) {
    struct stat st;
    ASSERT_EQ(stat((base + "/pub/userfile").c_str(), &st), 0) << base << ": " << ErrName(errno);
    EXPECT_EQ(ReadFile(base + "/pub/userfile"), "u");
    EXPECT_EQ(TryWrites(base + "/pub", base + "/pub/userfile", base + "/pub/userdir"), AllErrno("EROFS")) << base;
    EXPECT_EQ(User([&] { return TryWrites(base + "/pub", base + "/pub/userfile", base + "/pub/userdir"); }),
              AllErrno("EROFS"))
        << base;
    // Root, at the top levels of the view.
    EXPECT_EQ(ErrOf(mkdir((base + "/x").c_str(), 0755)), "EROFS");
  }
  for (const std::string& top : {P(".hashfs"), P(".hashfs/history"), P(".hashfs/snapshots")}) {
    EXPECT_EQ(ErrOf(mkdir((top + "/x").c_str(), 0755)), "EROFS") << top;
    int fd = open((top + "/x").c_str(), O_CREAT | O_WRONLY, 0644);
    EXPECT_EQ(ErrOf(fd), "EROFS") << top;
    if (fd >= 0) close(fd);
    EXPECT_EQ(ErrOf(symlink("x", (top + "/sl").c_str())), "EROFS") << top;
    EXPECT_EQ(ErrOf(chmod(top.c_str(), 0777)), "EROFS") << top;
  }
  EXPECT_EQ(ErrOf(rmdir(P(".hashfs/history/" + ids[0]).c_str())), "EROFS");
  EXPECT_EQ(ErrOf(rename(P(".hashfs/snapshots/snap1").c_str(), P(".hashfs/snapshots/snap2").c_str())), "EROFS");
  // Moving things between the live tree and the view is refused too.
  std::string e = ErrOf(rename(P("pub/userfile").c_str(), P(".hashfs/history/" + ids[0] + "/pub/moved").c_str()));
  EXPECT_TRUE(e == "EROFS" || e == "EXDEV") << e;
  e = ErrOf(link(P("pub/userfile").c_str(), P(".hashfs/history/" + ids[0] + "/pub/linked").c_str()));
  EXPECT_TRUE(e == "EROFS" || e == "EXDEV") << e;
  e = ErrOf(rename(P(".hashfs/history/" + ids[0] + "/pub/userfile").c_str(), P("pub/stolen").c_str()));
  EXPECT_TRUE(e == "EROFS" || e == "EXDEV") << e;
  EXPECT_EQ(ReadFile(P("pub/userfile")), "u");
}

}  // namespace
}  // namespace fusetest
