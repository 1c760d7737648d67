// Tests for dml/nn/module.hpp and nn/sequential.hpp: names, modes, state dicts.
#include <doctest/doctest.h>

#include <dml/dml.hpp>
#include <dml/nn/nn.hpp>
#include <type_traits>

using namespace dml;
using TF = Tensor<float>;

namespace {

// conv -> bn -> relu, with a nested Sequential: names like torchvision's.
class Net : public nn::Module<float> {
 public:
  Net() : conv(1, 2, 3, {.padding = 1}, 1), bn(2) {
    register_module("conv", conv);
    register_module("bn", bn);
    auto s = std::make_unique<nn::Sequential<float>>();
    s->emplace<nn::Linear<float>>(8, 3, true, std::uint64_t{2});
    s->emplace<nn::Dropout<float>>(0.5, 3);
    s->emplace<nn::BatchNorm1d<float>>(3);
    tail = &register_module("tail", std::move(s));
    extra = register_parameter("scale", TF::ones({1}));
  }
  TF forward(const TF& x) override {
    TF y = ops::relu(bn(conv(x)));
    return (*tail)(y.reshape({y.dim(0), -1})) * extra;
  }
  nn::Conv2d<float> conv;
  nn::BatchNorm2d<float> bn;
  nn::Sequential<float>* tail;
  TF extra;
};

}  // namespace

static_assert(!std::is_copy_constructible_v<nn::Module<float>>);
static_assert(!std::is_copy_assignable_v<nn::Linear<float>>);
static_assert(!std::is_move_constructible_v<nn::ResNet18<float>>);

TEST_CASE("nested modules give dotted names in PyTorch's order") {
  Net net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias",
                                                            "bn.running_mean", "bn.running_var",
                                                            "bn.num_batches_tracked", "tail.0.weight", "tail.0.bias",
                                                            "tail.2.weight", "tail.2.bias", "tail.2.running_mean",
                                                            "tail.2.running_var", "tail.2.num_batches_tracked"});
  auto params = net.named_parameters();
  CHECK(params.size() == 9);
  CHECK(params[1].first == "conv.weight");
  CHECK(params[1].second.same(net.conv.weight()));
  CHECK(net.num_parameters() == 1 + 18 + 2 + 2 + 2 + 24 + 3 + 3 + 3);
  CHECK(net.named_buffers().size() == 6);
  auto gens = net.named_generators();
  REQUIRE(gens.size() == 1);
  CHECK(gens[0].first == "tail.1.generator");
  CHECK(net.named_children().size() == 3);
}

TEST_CASE("train and eval reach every descendant") {
  Net net;
  CHECK(net.is_training());
  net.eval();
  CHECK(!net.is_training());
  CHECK(!net.bn.is_training());
  CHECK(!(*net.tail)[2].is_training());
  net.train();
  CHECK((*net.tail)[1].is_training());
  Generator g(1);
  TF x = TF::uniform({4, 1, 2, 2}, g);
  CHECK(net(x).shape() == Shape{4, 3});
  CHECK(net.bn.num_batches_tracked().item() == 1);
}

TEST_CASE("load_state_dict copies values, and strict loading lists every problem") {
  Net a, b;
  {
    NoGrad ng;
    TF w = a.conv.weight();
    w.copy_(TF::full(w.shape(), 0.25f));
  }
  b.load_state_dict(a.state_dict());
  CHECK(b.conv.weight().to_vector() == a.conv.weight().to_vector());
  CHECK(!b.conv.weight().shares_storage(a.conv.weight()));
  CHECK(b.conv.weight().requires_grad());

  auto sd = a.state_dict();
  sd.erase("bn.bias");
  sd.insert("bn.extra", TF::zeros({2}));
  sd.set("conv.bias", TF::zeros({5}));
  sd.set("bn.num_batches_tracked", TF::zeros({}));  // wrong element type
  try {
    b.load_state_dict(sd);
    FAIL("expected dml::Error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("missing keys: bn.bias") != std::string::npos);
    CHECK(m.find("unexpected keys: bn.extra") != std::string::npos);
    CHECK(m.find("load_state_dict into ") == 0);
    CHECK(m.find("'conv.bias': expected float32 [2], found float32 [5]") != std::string::npos);
    CHECK(m.find("'bn.num_batches_tracked': expected int64 [], found float32 []") != std::string::npos);
  }

  // Non-strict: mismatches still throw, missing and unexpected are reported.
  sd.set("conv.bias", a.conv.bias());
  sd.set("bn.num_batches_tracked", a.bn.num_batches_tracked());
  Net c;
  auto res = c.load_state_dict(sd, false);
  CHECK(res.missing == std::vector<std::string>{"bn.bias"});
  CHECK(res.unexpected == std::vector<std::string>{"bn.extra"});
  CHECK(c.conv.weight().to_vector() == a.conv.weight().to_vector());
}

TEST_CASE("a failing load changes nothing") {
  Net a, b;
  auto before = b.conv.weight().to_vector();
  auto sd = a.state_dict();
  sd.set("tail.0.weight", TF::zeros({2, 2}));
  CHECK_THROWS_AS(b.load_state_dict(sd, false), Error);
  CHECK(b.conv.weight().to_vector() == before);
}

TEST_CASE("state_dict entries are live handles") {
  Net net;
  auto sd = net.state_dict();
  TF w = sd.tensor("conv.weight");
  CHECK(w.same(net.conv.weight()));
  CHECK_THROWS_AS(sd.tensor("bn.num_batches_tracked"), Error);
  CHECK_THROWS_AS(sd.at("nope"), Error);
  CHECK_THROWS_AS(sd.insert("conv.weight", w), Error);
}

TEST_CASE("Sequential chains, indexes and names its layers") {
  nn::Sequential<double> seq;
  seq.emplace<nn::Linear<double>>(4, 3, true, std::uint64_t{1});
  seq.emplace<nn::ReLU<double>>();
  seq.emplace<nn::Linear<double>>(3, 2, false, std::uint64_t{2});
  CHECK(seq.size() == 3);
  CHECK(seq.state_dict().keys() == std::vector<std::string>{"0.weight", "0.bias", "2.weight"});
  CHECK(seq.at<nn::Linear<double>>(2).out_features() == 2);
  CHECK_THROWS_AS(seq.at<nn::Linear<double>>(1), Error);
  CHECK_THROWS_AS(seq[3], Error);
  Generator g(1);
  auto x = Tensor<double>::uniform({5, 4}, g);
  CHECK(seq(x).shape() == Shape{5, 2});
  nn::Flatten<double> flat;
  CHECK(flat(Tensor<double>::zeros({2, 3, 4})).shape() == Shape{2, 12});
  nn::Sequential<double> empty;
  CHECK(empty(x).same(x));
  nn::Module<double> base;
  CHECK_THROWS_AS(base(x), Error);
}

TEST_CASE("zero_grad clears every parameter's gradient") {
  nn::Linear<double> fc(3, 2);
  Generator g(1);
  ops::sum(fc(Tensor<double>::uniform({4, 3}, g))).backward();
  CHECK(fc.weight().grad().defined());
  fc.zero_grad();
  CHECK(!fc.weight().grad().defined());
  CHECK(!fc.bias().grad().defined());
}
