#include "agent/otlp/process_resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace sonde::otlp {
namespace {

TEST(ContainerId, CgroupLayouts) {
  const std::string id(64, 'a');
  EXPECT_EQ(ContainerIdFromCgroup("0::/system.slice/docker-" + id + ".scope\n"), id);
  EXPECT_EQ(ContainerIdFromCgroup("12:cpu:/docker/" + id + "\n"), id);
  EXPECT_EQ(ContainerIdFromCgroup("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" + id + ".scope\n"), id);
  EXPECT_EQ(ContainerIdFromCgroup("0::/kubepods/besteffort/pod12/" + id + "\n"), id);
  EXPECT_EQ(ContainerIdFromCgroup("0::/user.slice/user-0.slice/session-1.scope\n"), "");
}

std::string ReadAll(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A real loopback connection: the client's socket inode is found from its
// local address/port and the server port, and the fd walk finds the owner.
TEST(ProcessResolver, FindsTheSocketOfALoopbackConnection) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t server_port = ntohs(addr.sin_port);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  sockaddr_in local{};
  len = sizeof local;
  getsockname(client, reinterpret_cast<sockaddr*>(&local), &len);
  struct stat st {};
  ASSERT_EQ(fstat(client, &st), 0);

  auto inode = FindSocketInode(ReadAll("/proc/net/tcp"), ReadAll("/proc/net/tcp6"), "127.0.0.1",
                               ntohs(local.sin_port), server_port);
  ASSERT_TRUE(inode.has_value());
  EXPECT_EQ(*inode, static_cast<uint64_t>(st.st_ino));
  EXPECT_FALSE(FindSocketInode(ReadAll("/proc/net/tcp"), ReadAll("/proc/net/tcp6"), "127.0.0.1",
                               ntohs(local.sin_port), static_cast<uint16_t>(server_port + 1)));

  auto self = ReadProcessInfo(static_cast<uint32_t>(getpid()));
  ASSERT_TRUE(self.has_value());
  EXPECT_EQ(self->pid, static_cast<uint32_t>(getpid()));
  EXPECT_FALSE(self->comm.empty());
  EXPECT_NE(self->command.find("otlp_unit_test"), std::string::npos);
  close(client);
  close(listener);
}

}  // namespace
}  // namespace sonde::otlp
