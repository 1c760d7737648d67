// Tests for dml/nn/serialize.hpp: safetensors round trips, strict loading,
// and fitting an RGB conv1 to a greyscale body.
#include <doctest/doctest.h>
#include <unistd.h>

#include <dml/dml.hpp>
#include <dml/nn/nn.hpp>
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
      doctest::Contains("conv1.weight: checkpoint float32 [4, 3, 7, 7] vs module float32 [4, 1, 7, 7]"), Error);
}

TEST_CASE("skip_prefixes keeps a new classifier; strict loading names what is wrong") {
  nn::ResNet18<float> imagenet(tiny(1, 1, 1000)), mine(tiny(1, 2, 10));
  io::TensorMap map = nn::to_tensor_map(imagenet);
  CHECK_THROWS_WITH_AS(nn::load_tensor_map(mine, map), doctest::Contains("fc.weight: checkpoint float32 [1000, 32]"),
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
  CHECK_THROWS_WITH_AS(nn::load_tensor_map(other, half), doctest::Contains("bn1.weight' has dtype F16"), Error);
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
