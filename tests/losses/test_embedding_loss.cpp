#include <doctest/doctest.h>

#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <dml/losses/embedding_loss.hpp>
#include <dml/losses/methods.hpp>

#include "../support/error_of.hpp"
#include "../support/fixture_file.hpp"
#include "../support/gradcheck.hpp"

// The whole file in its own namespace: the unity build groups it with other loss tests.
namespace test_embedding_loss {

using namespace dml;
using TD = Tensor<double>;
using Labels = Tensor<std::int64_t>;

using Ref = testing::FixtureArrays;

const Ref& reference() {
  static const Ref ref = testing::load_fixture_arrays("losses/embedding_ref.txt");
  return ref;
}

constexpr std::int64_t kN = 12, kDim = 6, kClasses = 5;

TD fixture_emb() { return TD::from_vector(reference().at("emb"), {kN, kDim}); }
Labels fixture_labels() {
  std::vector<std::int64_t> y;
  for (double v : reference().at("labels")) y.push_back(static_cast<std::int64_t>(v));
  return Labels::from_vector(y);
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  REQUIRE_MESSAGE(got.size() == want.size(), what, ": ", got.size(), " values, fixture has ", want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    CHECK_MESSAGE(std::abs(got[i] - want[i]) <= 1e-9 + 1e-9 * std::abs(want[i]), what, "[", i, "] = ", got[i],
                  ", PyTorch ", want[i]);
}

// Runs a pair loss on the fixture batch and compares loss and d(loss)/d(embeddings).
template <class Loss>
void check_pair_loss(Loss& loss, const std::string& name) {
  INFO("case ", name);
  TD emb = fixture_emb().requires_grad_(true);
  TD l = loss(emb, fixture_labels());
  check_close({l.item()}, reference().at(name + ".loss"), name + ".loss");
  l.backward();
  check_close(emb.grad().to_vector(), reference().at(name + ".d_emb"), name + ".d_emb");
}

template <class Loss>
void check_proxy_loss(Loss& loss, const std::string& name) {
  INFO("case ", name);
  {
    NoGrad ng;
    TD p = loss.proxies();
    p.copy_(TD::from_vector(reference().at("proxies"), {kClasses, kDim}));
  }
  TD emb = fixture_emb().requires_grad_(true);
  TD l = loss(emb, fixture_labels());
  check_close({l.item()}, reference().at(name + ".loss"), name + ".loss");
  l.backward();
  check_close(emb.grad().to_vector(), reference().at(name + ".d_emb"), name + ".d_emb");
  check_close(loss.proxies().grad().to_vector(), reference().at(name + ".d_proxies"), name + ".d_proxies");
}

// A gradient check of loss(embeddings) on a fresh random batch with the fixture's labels.
template <class Loss>
void gradcheck_loss(Loss& loss, std::uint64_t seed = 3) {
  INFO("gradient check of ", loss.type_name());
  const Labels y = fixture_labels();
  testing::gradcheck([&](auto& v) { return loss(v[0], y); }, {testing::param({kN, kDim}, seed)});
}

using namespace dml::losses;
namespace mi = dml::miners;
namespace di = dml::distances;

TEST_CASE("triplet margin loss and the triplet miners match PyTorch") {
  TripletMargin<mi::AllTriplets, di::Euclidean, double> all;
  check_pair_loss(all, "triplet");
  TripletMargin<mi::BatchHard, di::Euclidean, double> hard({.margin = 0.2});
  check_pair_loss(hard, "triplet_batch_hard");
  TripletMargin<mi::SemiHard, di::Euclidean, double> semi({.margin = 0.2, .miner = {.margin = 0.3}});
  check_pair_loss(semi, "triplet_semihard");
  TripletMargin<mi::HardTriplets, di::Euclidean, double> hard_t({.margin = 0.2, .miner = {.margin = 0.3}});
  check_pair_loss(hard_t, "triplet_hard");
  TripletMargin<mi::MarginTriplets, di::Euclidean, double> viol({.margin = 0.2, .miner = {.margin = 0.1}});
  check_pair_loss(viol, "triplet_margin_miner");
  TripletMargin<mi::AllTriplets, di::Cosine, double> cosine({.margin = 0.1});
  check_pair_loss(cosine, "triplet_cosine");
  TripletMargin<mi::AllTriplets, di::SquaredEuclidean, double> raw({.margin = 1.0, .distance = {.normalize = false}});
  check_pair_loss(raw, "triplet_sq_raw");
}

TEST_CASE("contrastive loss matches PyTorch, with and without the multi-similarity miner") {
  Contrastive<mi::AllPairs, di::Euclidean, double> plain;
  check_pair_loss(plain, "contrastive");
  Contrastive<mi::MultiSimilarity, di::Euclidean, double> mined({.pos_margin = 0.2, .neg_margin = 1.2});
  check_pair_loss(mined, "contrastive_ms");
  Contrastive<mi::AllPairs, di::Cosine, double> cosine({.pos_margin = 0.8, .neg_margin = 0.2});
  check_pair_loss(cosine, "contrastive_cosine");
}

TEST_CASE("multi-similarity, circle, NT-Xent and SupCon losses match PyTorch") {
  MultiSimilarity<mi::AllPairs, di::Cosine, double> ms;
  check_pair_loss(ms, "ms");
  MultiSimilarity<mi::MultiSimilarity, di::Cosine, double> ms_mined;
  check_pair_loss(ms_mined, "ms_mined");
  Circle<mi::AllPairs, di::Cosine, double> circle;
  check_pair_loss(circle, "circle");
  NTXent<mi::AllPairs, di::Cosine, double> nt;
  check_pair_loss(nt, "ntxent");
  NTXent<mi::MultiSimilarity, di::Cosine, double> nt_ms({.temperature = 0.5});
  check_pair_loss(nt_ms, "ntxent_ms");
  SupCon<mi::AllPairs, di::Cosine, double> sc;
  check_pair_loss(sc, "supcon");
  SupCon<mi::MultiSimilarity, di::Cosine, double> sc_ms({.temperature = 0.2});
  check_pair_loss(sc_ms, "supcon_ms");
}

TEST_CASE("proxy losses match PyTorch in the embeddings and the proxies") {
  ProxyNCA<di::SquaredEuclidean, double> nca(kClasses, kDim, {.softmax_scale = 3.0});
  check_proxy_loss(nca, "proxy_nca");
  ProxyAnchor<di::Cosine, double> anchor(kClasses, kDim);
  check_proxy_loss(anchor, "proxy_anchor");
  CHECK(anchor.num_parameters() == kClasses * kDim);
}

TEST_CASE("embedding losses by name: each entry of kEmbeddingMethods is the loss it says, with its defaults") {
  // The entries whose settings are a fixture case must give that case's loss and gradient.
  const std::map<std::string, std::string> fixture_of = {{"ms", "ms_mined"},       {"supcon", "supcon"},
                                                         {"contrastive", "contrastive"}, {"circle", "circle"},
                                                         {"ntxent", "ntxent"},      {"proxyanchor", "proxy_anchor"}};
  std::vector<std::string> checked;
  for (const heads::MethodInfo& info : kEmbeddingMethods) {
    CAPTURE(info.key);
    CHECK(find_embedding_method(info.key) == &info);
    CHECK(find_embedding_method(info.alias) == &info);
    with_embedding_loss(info.alias, [&](auto method) {
      using M = decltype(method);
      auto loss = method.template make<double, Cpu>(kClasses, kDim, 7);
      using L = decltype(loss);
      CHECK(M::kProxies == (loss.num_parameters() > 0));
      CHECK(M::kPairs == !M::kProxies);
      if (info.key == std::string_view("triplet")) {
        CHECK(std::is_same_v<L, TripletMargin<mi::BatchHard, di::Euclidean, double>>);
        if constexpr (requires { loss.rule().margin; }) CHECK(loss.rule().margin == kBatchHardMargin);
      }
      if (info.key == std::string_view("ms")) CHECK(std::is_same_v<L, MultiSimilarity<mi::MultiSimilarity, di::Cosine, double>>);
      if (info.key == std::string_view("supcon")) CHECK(std::is_same_v<L, SupCon<mi::AllPairs, di::Cosine, double>>);
      if (info.key == std::string_view("proxyanchor")) CHECK(std::is_same_v<L, ProxyAnchor<di::Cosine, double>>);
      if (info.key == std::string_view("proxynca")) {
        CHECK(std::is_same_v<L, ProxyNCA<di::SquaredEuclidean, double>>);
        if constexpr (requires { loss.rule().softmax_scale; }) CHECK(loss.rule().softmax_scale == 1.0);
      }
      const auto f = fixture_of.find(std::string(info.key));
      if (f == fixture_of.end()) return;
      if constexpr (M::kProxies) check_proxy_loss(loss, f->second);
      else check_pair_loss(loss, f->second);
      checked.push_back(f->second);
    });
  }
  CHECK(checked.size() == fixture_of.size());
  CHECK(testing::error_of([] { with_embedding_loss("arcface", [](auto) {}); }) ==
        "unknown embedding loss 'arcface' (expected one of triplet, ms, proxyanchor, supcon, contrastive, circle, "
        "ntxent, proxynca)");
  CHECK(find_embedding_method("softmax") == nullptr);
}

TEST_CASE("embedding losses pass a gradient check in double") {
  TripletMargin<mi::AllTriplets, di::Euclidean, double> triplet({.margin = 0.3});
  gradcheck_loss(triplet);
  TripletMargin<mi::BatchHard, di::Euclidean, double> hard({.margin = 0.3});
  gradcheck_loss(hard);
  Contrastive<mi::AllPairs, di::Euclidean, double> contrastive({.pos_margin = 0.1, .neg_margin = 1.1});
  gradcheck_loss(contrastive);
  MultiSimilarity<mi::MultiSimilarity, di::Cosine, double> ms;
  gradcheck_loss(ms);
  // Not circle loss: it holds its weights a_p, a_n constant (PML detaches them), so its
  // gradient is not the derivative of its value by definition; the fixture checks it.
  NTXent<mi::AllPairs, di::Cosine, double> nt({.temperature = 0.5});
  gradcheck_loss(nt);
  SupCon<mi::AllPairs, di::Dot, double> sc;
  gradcheck_loss(sc);
  ProxyNCA<di::SquaredEuclidean, double> nca(kClasses, kDim);
  gradcheck_loss(nca);
  ProxyAnchor<di::Cosine, double> anchor(kClasses, kDim, {}, 4);
  gradcheck_loss(anchor);
  // In the proxies too, through the op the module runs: rows are the proxies.
  const Labels y = fixture_labels(), classes = Labels::from_vector({0, 1, 2, 3, 4});
  testing::gradcheck(
      [&](auto& v) {
        return ops::row_loss(rules::ProxyAnchor<>{}, di::Cosine{}.matrix(v[1], v[0]), classes, y, false);
      },
      {testing::param({kN, kDim}, 5), testing::param({kClasses, kDim}, 6)});
}

TEST_CASE("distance matrices: values, a zero diagonal with a finite gradient") {
  const TD a = TD::from_vector({3, 4, 0, 1}, {2, 2});
  const std::vector<double> cos = di::Cosine{}.matrix(a, a).to_vector();
  CHECK(cos[1] == doctest::Approx(0.8));
  const std::vector<double> raw = di::Euclidean{.normalize = false}.matrix(a, a).to_vector();
  CHECK(raw[0] == 0.0);
  CHECK(raw[1] == doctest::Approx(std::sqrt(9.0 + 9.0)));
  CHECK(di::SquaredEuclidean{.normalize = false}.matrix(a, a).to_vector()[2] == doctest::Approx(18.0));
  CHECK(di::Dot{}.matrix(a, a).to_vector()[1] == doctest::Approx(4.0));
  TD x = a.detach().requires_grad_(true);
  ops::sum(di::Euclidean{}.matrix(x, x)).backward();
  for (double g : x.grad().to_vector()) CHECK(std::isfinite(g));
}

TEST_CASE("a batch without pairs gives a zero loss, and the reductions count only what they should") {
  // Every label distinct: no positive pair, so triplet, SupCon and circle have nothing to average.
  const Labels y = Labels::from_vector({0, 1, 2, 3});
  TD emb = testing::param({4, 3}, 9).requires_grad_(true);
  TripletMargin<mi::AllTriplets, di::Euclidean, double> triplet;
  TD l = triplet(emb, y);
  CHECK(l.item() == 0.0);
  l.backward();
  for (double g : emb.grad().to_vector()) CHECK(g == 0.0);
  SupCon<mi::AllPairs, di::Cosine, double> sc;
  CHECK(sc(emb, y).item() == 0.0);
  // Contrastive has only its negative part: with neg_margin 3 (> any distance of unit
  // vectors) every negative pair counts, so the loss is the mean of 3 - d over the 12 pairs.
  Contrastive<mi::AllPairs, di::Euclidean, double> c({.neg_margin = 3});
  const std::vector<double> d = di::Euclidean{}.matrix(emb, emb).to_vector();
  double want = 0;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      if (i != j) want += 3 - d[static_cast<std::size_t>(i * 4 + j)];
  CHECK(c(emb, y).item() == doctest::Approx(want / 12));
}

TEST_CASE("embedding losses refuse bad hyper-parameters and shapes, naming them") {
  using testing::error_of;
  CHECK(error_of([] { MultiSimilarity<> ms({.alpha = 0}); }).find("alpha and beta must be finite and > 0") !=
        std::string::npos);
  CHECK(error_of([] { NTXent<> nt({.temperature = -1}); }).find("temperature must be finite and > 0, got -1") !=
        std::string::npos);
  CHECK(error_of([] { MultiSimilarity<mi::MultiSimilarity> ms({.miner = {.epsilon = -0.5}}); })
            .find("epsilon must be finite and >= 0, got -0.5") != std::string::npos);
  CHECK(error_of([] { ProxyAnchor<> p(0, 4); }).find("classes and dim must be >= 1, got 0 and 4") !=
        std::string::npos);
  TripletMargin<> triplet;
  CHECK(error_of([&] { triplet(Tensor<float>::zeros({4, 3}), Labels::from_vector({0, 1, 0})); })
            .find("TripletMarginLoss: labels of shape [3] do not match embeddings of shape [4, 3]") !=
        std::string::npos);
  ProxyNCA<> nca(3, 4);
  CHECK(error_of([&] { nca(Tensor<float>::zeros({2, 4}), Labels::from_vector({0, 3})); })
            .find("index 3 at position 1 is outside [0, 3)") != std::string::npos);
  CHECK(error_of([&] { nca(Tensor<float>::zeros({2, 5}), Labels::from_vector({0, 1})); })
            .find("do not match the proxies' dimension 4") != std::string::npos);
}

TEST_CASE("float losses agree with double ones") {
  const Labels y = fixture_labels();
  const std::vector<double> e = reference().at("emb");
  const Tensor<float> ef = Tensor<float>::from_vector(std::vector<float>(e.begin(), e.end()), {kN, kDim});
  MultiSimilarity<mi::MultiSimilarity> msf;
  MultiSimilarity<mi::MultiSimilarity, di::Cosine, double> msd;
  CHECK(msf(ef, y).item() == doctest::Approx(msd(fixture_emb(), y).item()).epsilon(1e-5));
  TripletMargin<mi::BatchHard> tf({.margin = 0.2});
  CHECK(tf(ef, y).item() == doctest::Approx(reference().at("triplet_batch_hard.loss")[0]).epsilon(1e-5));
}

}  // namespace test_embedding_loss
