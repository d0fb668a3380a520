// Module entry: every glue file registers its functions through VK_REGISTER, so this file never changes
// when a kernel family is added.
#include "glue/common.h"

namespace vk {
std::vector<Registrar>& registrars() {
  static std::vector<Registrar> r;
  return r;
}
}  // namespace vk

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto r : vk::registrars()) r(env, exports);
  return exports;
}

NODE_API_MODULE(vlmkit, Init)
