// Tests for dml/nn/serialize.hpp: safetensors round trips, strict loading,
// and fitting an RGB conv1 to a greyscale body.
#include <doctest/doctest.h>
#include <unistd.h>

#include <dml/dml.hpp>
#include <dml/nn/nn.hpp>
#include <bit>
#include <cstring>
#include <filesystem>

using namespace dml;
using TF = Tensor<float>;

namespace {
nn::ResNetOptions tiny(std::int64_t in_channels, std::uint64_t seed, std::int64_t classes = 10) {
  return {.in_channels = in_channels,
          .head = nn::Head::Torchvision,
          .num_classes = classes,
          .width = 4,
          .blocks = {1, 1, 1, 1},
          .seed = seed};
}
std::filesystem::path temp_file(const char* name) {
  return std::filesystem::temp_directory_path() / (std::string("dml_nn_") + std::to_string(::getpid()) + name);
}
}  // namespace

TEST_CASE("save_weights then load_weights restores every parameter and buffer") {
  nn::ResNet18<float> a(tiny(1, 1)), b(tiny(1, 2));
  Generator g(3);
  a(TF::uniform({2, 1, 16, 16}, g));  // moves the running statistics and counters
  auto path = temp_file("roundtrip.safetensors");
  nn::save_weights(a, path, {{"note", "test"}});
  auto res = nn::load_weights(b, path);
  CHECK(res.missing.empty());
  CHECK(res.unexpected.empty());
  auto sa = a.state_dict(), sb = b.state_dict();
  for (const auto& [name, entry] : sa) {
    if (auto* t = std::get_if<TF>(&entry))
      CHECK_MESSAGE(std::get<TF>(sb.at(name)).to_vector() == t->to_vector(), name);
    else
      CHECK(std::get<Tensor<std::int64_t>>(sb.at(name)).item() == 1);
  }
  // The file holds F32 weights and I64 counters under torchvision's names.
  auto map = io::load_safetensors(path);
  CHECK(map.at("conv1.weight").dtype == io::DType::F32);
  CHECK(map.at("bn1.num_batches_tracked").dtype == io::DType::I64);
  CHECK(map.at("bn1.num_batches_tracked").shape.empty());
  std::filesystem::remove(path);
}

TEST_CASE("a float checkpoint loads into a double module") {
  nn::ResNet18<float> a(tiny(1, 1));
  nn::ResNet18<double> b(tiny(1, 2));
  nn::load_tensor_map(b, nn::to_tensor_map(a));
  auto wa = a.conv1.weight().to_vector();
  auto wb = b.conv1.weight().to_vector();
  for (std::size_t i = 0; i < wa.size(); ++i) CHECK(wb[i] == double(wa[i]));
}

TEST_CASE("an RGB conv1 folds into a greyscale body by mean or sum") {
  nn::ResNet18<float> rgb(tiny(3, 1));
  io::TensorMap map = nn::to_tensor_map(rgb);
  auto w3 = rgb.conv1.weight();
  auto check_fold = [&](const nn::ResNet18<float>& grey, double scale) {
    for (std::int64_t o = 0; o < 4; ++o)
      for (std::int64_t i = 0; i < 7; ++i)
        for (std::int64_t j = 0; j < 7; ++j) {
          double want = (double(w3.at(o, 0, i, j)) + w3.at(o, 1, i, j) + w3.at(o, 2, i, j)) * scale;
          CHECK(grey.conv1.weight().at(o, 0, i, j) == doctest::Approx(want).epsilon(1e-6));
        }
  };
  nn::ResNet18<float> mean(tiny(1, 2)), sum(tiny(1, 3)), refuse(tiny(1, 4));
  nn::load_tensor_map(mean, map);  // Mean is the default
  check_fold(mean, 1.0 / 3);
  nn::load_tensor_map(sum, map, {.adapt_input = nn::ChannelAdapt::Sum});
  check_fold(sum, 1.0);
  CHECK(sum.layer3.at<nn::BasicBlock<float>>(0).conv1.weight().to_vector() ==
        rgb.layer3.at<nn::BasicBlock<float>>(0).conv1.weight().to_vector());
  CHECK_THROWS_WITH_AS(
      nn::load_tensor_map(refuse, map, {.adapt_input = nn::ChannelAdapt::Error}),
      doctest::Contains("'conv1.weight': expected F32 [4, 1, 7, 7], found F32 [4, 3, 7, 7]"), Error);
}

TEST_CASE("skip_prefixes keeps a new classifier; strict loading names what is wrong") {
  nn::ResNet18<float> imagenet(tiny(1, 1, 1000)), mine(tiny(1, 2, 10));
  io::TensorMap map = nn::to_tensor_map(imagenet);
  CHECK_THROWS_WITH_AS(nn::load_tensor_map(mine, map), doctest::Contains("'fc.weight': expected F32 [10, 32], found F32 [1000, 32]"),
                       Error);
  auto fc_before = mine.fc->weight().to_vector();
  auto res = nn::load_tensor_map(mine, map, {.skip_prefixes = {"fc."}});
  CHECK(res.missing.empty());
  CHECK(mine.fc->weight().to_vector() == fc_before);
  CHECK(mine.conv1.weight().to_vector() == imagenet.conv1.weight().to_vector());

  io::TensorMap extra = map;
  extra.erase("bn1.bias");
  extra.emplace("bn1.extra", io::RawTensor::from(std::vector<float>{1, 2}, {2}));
  nn::ResNet18<float> other(tiny(1, 3, 1000));
  auto before = other.conv1.weight().to_vector();
  CHECK_THROWS_WITH_AS(nn::load_tensor_map(other, extra), doctest::Contains("missing keys: bn1.bias"), Error);
  CHECK(other.conv1.weight().to_vector() == before);  // a failed strict load changes nothing
  auto lenient = nn::load_tensor_map(other, extra, {.strict = false});
  CHECK(lenient.missing == std::vector<std::string>{"bn1.bias"});
  CHECK(lenient.unexpected == std::vector<std::string>{"bn1.extra"});

  io::TensorMap half = map;
  half["bn1.weight"].dtype = io::DType::F16;
  half["bn1.weight"].bytes.resize(half["bn1.weight"].bytes.size() / 2);
  CHECK_THROWS_WITH_AS(nn::load_tensor_map(other, half),
                       doctest::Contains("'bn1.weight': expected F32 [4], found F16 [4] (half precision converts only "
                                         "with LoadOptions::convert.half_to_float)"),
                       Error);
}

TEST_CASE("load_weights names the file in its errors") {
  nn::ResNet18<float> net(tiny(1, 1));
  CHECK_THROWS_AS(nn::load_weights(net, temp_file("missing.safetensors")), Error);
  auto path = temp_file("wrong.safetensors");
  nn::Linear<float> fc(3, 2);
  nn::save_weights(fc, path);
  CHECK_THROWS_WITH_AS(nn::load_weights(net, path), doctest::Contains(path.string().c_str()), Error);
  std::filesystem::remove(path);
}

namespace {
// The message load_weights throws, or "no error".
std::string load_error(nn::Module<float>& m, const std::filesystem::path& path, const nn::LoadOptions& opt = {}) {
  try {
    nn::load_weights(m, path, opt);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}
std::vector<std::byte> halves(std::initializer_list<std::uint16_t> bits) {
  std::vector<std::byte> b(bits.size() * 2);
  std::memcpy(b.data(), std::data(bits), b.size());
  return b;
}
}  // namespace

TEST_CASE("an integer tensor fills a float parameter only when the conversion is asked for") {
  nn::Linear<float> fc(3, 2);
  io::TensorMap map = nn::to_tensor_map(fc);
  map["weight"] = io::RawTensor::from(std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  auto path = temp_file("int_weight.safetensors");
  io::save_safetensors(path, map);
  const auto before = fc.weight().to_vector();
  const std::string msg = load_error(fc, path);
  INFO(msg);
  CHECK(msg.find(path.string() + ": load_weights into Linear: 'weight': expected F32 [2, 3], found I64 [2, 3]") == 0);
  CHECK(msg.find("LoadOptions::convert.int_to_float") != std::string::npos);
  CHECK(fc.weight().to_vector() == before);  // refused: nothing changed
  nn::load_weights(fc, path, {.convert = {.int_to_float = true}});
  CHECK(fc.weight().to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  std::filesystem::remove(path);
}

TEST_CASE("a float tensor fills an int64 buffer only when asked, and only with integral values") {
  nn::BatchNorm2d<float> bn(2);
  io::TensorMap map = nn::to_tensor_map(bn);
  map["num_batches_tracked"] = io::RawTensor::from(std::vector<float>{7}, {});
  auto path = temp_file("float_counter.safetensors");
  io::save_safetensors(path, map);
  std::string msg = load_error(bn, path);
  INFO(msg);
  CHECK(msg.find("'num_batches_tracked': expected I64 [], found F32 []") != std::string::npos);
  CHECK(msg.find("LoadOptions::convert.float_to_int") != std::string::npos);
  nn::load_weights(bn, path, {.convert = {.float_to_int = true}});
  CHECK(bn.num_batches_tracked().item() == 7);
  map["num_batches_tracked"] = io::RawTensor::from(std::vector<float>{7.5f}, {});
  io::save_safetensors(path, map);
  msg = load_error(bn, path, {.convert = {.float_to_int = true}});
  CHECK(msg.find("'num_batches_tracked': expected integral values, found 7.5 at index 0") != std::string::npos);
  // Integer tensors of any width fill an int64 buffer without asking.
  map["num_batches_tracked"] = io::RawTensor::from(std::vector<std::uint8_t>{9}, {});
  io::save_safetensors(path, map);
  nn::load_weights(bn, path);
  CHECK(bn.num_batches_tracked().item() == 9);
  std::filesystem::remove(path);
}

TEST_CASE("F16 and BF16 weights convert to float exactly with convert.half_to_float") {
  nn::Linear<float> fc(2, 2, false);
  io::TensorMap map;
  // 1, -2, 65504 (largest half), 2^-24 (smallest subnormal half)
  map["weight"] = io::RawTensor{io::DType::F16, {2, 2}, halves({0x3c00, 0xc000, 0x7bff, 0x0001})};
  auto path = temp_file("half.safetensors");
  io::save_safetensors(path, map);
  CHECK(load_error(fc, path).find("'weight': expected F32 [2, 2], found F16 [2, 2]") != std::string::npos);
  nn::load_weights(fc, path, {.convert = {.half_to_float = true}});
  CHECK(fc.weight().to_vector() == std::vector<float>{1, -2, 65504, 0x1p-24f});
  // bfloat16: 1.5, -0.0078125, 3.0e38-ish, 1
  map["weight"] = io::RawTensor{io::DType::BF16, {2, 2}, halves({0x3fc0, 0xbc00, 0x7f61, 0x3f80})};
  io::save_safetensors(path, map);
  nn::load_weights(fc, path, {.convert = {.half_to_float = true}});
  const auto w = fc.weight().to_vector();
  CHECK(w[0] == 1.5f);
  CHECK(w[1] == -0.0078125f);
  CHECK(w[2] == std::bit_cast<float>(std::uint32_t{0x7f610000}));
  CHECK(w[3] == 1.0f);
  // Still refused for an integer buffer, and BOOL never converts.
  map["weight"] = io::RawTensor{io::DType::BOOL, {2, 2}, std::vector<std::byte>(4)};
  io::save_safetensors(path, map);
  CHECK(load_error(fc, path, {.convert = {.half_to_float = true, .int_to_float = true}})
            .find("'weight': expected F32 [2, 2], found BOOL [2, 2] (no conversion exists)") != std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("a weights error names the file and every key in one wording") {
  nn::Linear<float> fc(4, 2);
  nn::Linear<float> small(3, 2);
  auto path = temp_file("shapes.safetensors");
  io::TensorMap map = nn::to_tensor_map(small);
  map["extra"] = io::RawTensor::from(std::vector<float>{1}, {1});
  map.erase("bias");
  io::save_safetensors(path, map);
  const std::string msg = load_error(fc, path);
  INFO(msg);
  CHECK(msg == path.string() +
                   ": load_weights into Linear: 'weight': expected F32 [2, 4], found F32 [2, 3]; missing keys: bias; "
                   "unexpected keys: extra");
  CHECK(msg.find("load_state_dict") == std::string::npos);
  CHECK(msg.find("[at ") == std::string::npos);  // no internal source location in the message
  std::filesystem::remove(path);
}
