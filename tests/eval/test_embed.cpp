// Tests for dml/eval/embed.hpp and the Tensor front ends of the evaluation and
// t-SNE functions (dml/eval/host_matrix.hpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <dml/dml.hpp>
#include <dml/eval/anomaly.hpp>
#include <dml/eval/cluster.hpp>
#include <dml/eval/embed.hpp>
#include <dml/eval/metrics.hpp>
#include <dml/heads/margin_head.hpp>
#include <dml/nn/resnet.hpp>
#include <dml/viz/tsne.hpp>

#include "../data/byte_source.hpp"

using namespace dml;

namespace {

// A small ResNet (width 4, one block per stage, fastai head with 6-d output).
nn::ResNetOptions tiny_resnet(std::int64_t channels = 1) {
  return {.in_channels = channels, .embedding = 6, .head = nn::Head::Fastai, .width = 4, .blocks = {1, 1, 1, 1},
          .seed = 7};
}

// n random images of c x 8 x 8 with labels i % classes.
data::Dataset random_images(std::int64_t n, std::int64_t c = 1, std::int64_t classes = 3, std::uint64_t seed = 1) {
  Generator gen(seed);
  std::vector<float> v(static_cast<std::size_t>(n * c * 64));
  for (auto& x : v) x = static_cast<float>(gen.normal());
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[i] = i % classes;
  return data::Dataset::from_vectors(v, Shape{c, 8, 8}, labels, classes);
}

template <class T>
void check_close(const std::vector<T>& a, const std::vector<T>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE_MESSAGE(std::abs(a[i] - b[i]) <= tol, "element " << i);
}

// Blobs: n points in dim dimensions, class i % classes centred at 10 * e_class.
std::vector<float> blobs(std::int64_t n, std::int64_t dim, std::int64_t classes, std::vector<std::int64_t>& labels) {
  Generator gen(3);
  std::vector<float> x(static_cast<std::size_t>(n * dim));
  labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    labels[i] = i % classes;
    for (std::int64_t d = 0; d < dim; ++d)
      x[i * dim + d] = static_cast<float>(0.3 * gen.normal() + (d == labels[i] ? 10.0 : 0.0) + 0.1);
  }
  return x;
}

}  // namespace

TEST_CASE("embed returns every row in dataset order and matches one eval-mode forward") {
  nn::ResNet18<float> body(tiny_resnet());
  const data::Dataset ds = random_images(10);
  Tensor<float> emb = eval::embed(body, ds, {.batch_size = 3});  // batches 3, 3, 3, 1
  REQUIRE(emb.shape() == Shape{10, 6});
  CHECK_FALSE(emb.requires_grad());
  CHECK(emb.grad_fn() == nullptr);

  body.eval();
  NoGrad no_grad;
  Tensor<float> whole = body(ds.images);
  body.train();
  // In eval mode the batch split does not matter (BatchNorm running stats, no dropout).
  check_close(emb.to_vector(), whole.to_vector(), 1e-5);
  check_close(eval::embed(body, ds).to_vector(), whole.to_vector(), 1e-5);  // default batch 256: one batch
}

TEST_CASE("embed decodes a Dataset decoded on demand batch by batch: the embeddings of the same images held") {
  nn::ResNet18<float> body(tiny_resnet());
  data::ImageSet set{10, 8, 8, {}, {}};
  for (int i = 0; i < 10 * 64; ++i) set.pixels.push_back(static_cast<std::uint8_t>((i * 37) % 251));
  for (int i = 0; i < 10; ++i) set.labels.push_back(i % 3);
  const auto [held, lazy, source] = testing::held_and_on_demand(set);
  REQUIRE(lazy.on_demand());
  const std::int64_t reads = source->reads();
  const Tensor<float> a = eval::embed(body, held, {.batch_size = 4});
  const Tensor<float> b = eval::embed(body, lazy, {.batch_size = 4});
  CHECK(a.to_vector() == b.to_vector());
  CHECK(source->reads() - reads == 10);
}

TEST_CASE("embed gives every module back its own mode, also when it throws") {
  nn::ResNet18<float> body(tiny_resnet());
  body.train();
  body.layer2.eval();  // a mixed tree: only layer2 (and its children) in eval mode
  const data::Dataset ds = random_images(4);
  eval::embed(body, ds);
  CHECK(body.is_training());
  CHECK(body.layer1.is_training());
  CHECK_FALSE(body.layer2.is_training());
  CHECK(body.bn1.is_training());
  CHECK(body.head->is_training());

  body.eval();
  eval::embed(body, ds);
  CHECK_FALSE(body.is_training());
  CHECK_FALSE(body.layer1.is_training());

  body.train();
  heads::MarginHead<heads::Softmax> wrong(5, 3);  // expects 5-d embeddings, gets 6-d
  CHECK_THROWS_AS(eval::embed(body, wrong, ds), Error);
  CHECK(body.is_training());
  CHECK(wrong.is_training());
  CHECK(GradMode::enabled());
}

TEST_CASE("embed with a head returns the inference logits: no margin even in training mode") {
  nn::ResNet18<float> body(tiny_resnet());
  heads::MarginHead<heads::Arc> head(6, 3, {.s = 30, .m = 0.5}, 11);
  const data::Dataset ds = random_images(7);
  head.train();
  auto out = eval::embed(body, head, ds, {.batch_size = 4});
  REQUIRE(out.embeddings.shape() == Shape{7, 6});
  REQUIRE(out.logits.shape() == Shape{7, 3});
  CHECK(head.is_training());

  head.eval();
  NoGrad no_grad;
  Tensor<float> expect = head(out.embeddings);  // s * cos, no margin
  check_close(out.logits.to_vector(), expect.to_vector(), 1e-5);
  for (float v : out.logits.to_vector()) CHECK(std::abs(v) <= 30.0f + 1e-4f);
  check_close(out.embeddings.to_vector(), eval::embed(body, ds).to_vector(), 1e-6);
}

TEST_CASE("embed runs a double-precision body on float images") {
  nn::ResNet18<double> body(tiny_resnet());
  const data::Dataset ds = random_images(5);
  Tensor<double> emb = eval::embed(body, ds, {.batch_size = 2});
  REQUIRE(emb.shape() == Shape{5, 6});
  body.eval();
  NoGrad no_grad;
  const std::vector<float> f = ds.images.to_vector();
  Tensor<double> x = Tensor<double>::from_vector(std::vector<double>(f.begin(), f.end()), ds.images.shape());
  check_close(emb.to_vector(), body(x).to_vector(), 1e-10);
}

TEST_CASE("embed reports progress after every batch") {
  nn::ResNet18<float> body(tiny_resnet());
  std::vector<std::int64_t> seen;
  eval::embed(body, random_images(9), {.batch_size = 4, .progress = [&](std::int64_t done, std::int64_t total) {
                                         CHECK(total == 9);
                                         seen.push_back(done);
                                       }});
  CHECK(seen == std::vector<std::int64_t>{4, 8, 9});
}

TEST_CASE("embed rejects an empty dataset, a channel mismatch and a bad batch size") {
  nn::ResNet18<float> body(tiny_resnet(1));
  CHECK_THROWS_WITH_AS(eval::embed(body, data::Dataset{}), doctest::Contains("empty"), Error);
  CHECK_THROWS_WITH_AS(eval::embed(body, random_images(4, 3)), doctest::Contains("3 channel(s)"), Error);
  CHECK_THROWS_WITH_AS(eval::embed(body, random_images(4), {.batch_size = 0}), doctest::Contains("batch_size"),
                       Error);
  CHECK(GradMode::enabled());
}

TEST_CASE("retrieval, clustering and anomaly scores take tensors and agree with the raw versions") {
  std::vector<std::int64_t> labels;
  const std::vector<float> x = blobs(60, 4, 3, labels);
  const Tensor<float> t = Tensor<float>::from_vector(x, Shape{60, 4});

  const auto raw = eval::retrieval(x.data(), 60, 4, labels, eval::Metric::L2);
  const auto via_vector = eval::retrieval(t, labels, eval::Metric::L2);
  const auto via_tensor = eval::retrieval(t, Tensor<std::int64_t>::from_vector(labels), {.metric = eval::Metric::L2});
  CHECK(via_vector.map_at_r == raw.map_at_r);
  CHECK(via_tensor.r_precision == raw.r_precision);
  CHECK(via_vector.precision_at_1 == doctest::Approx(1.0));
  CHECK(eval::retrieval(t, labels).map_at_r == doctest::Approx(1.0));  // cosine by default

  // A double tensor is converted to float rows.
  std::vector<double> xd(x.begin(), x.end());
  const auto dbl = eval::retrieval(Tensor<double>::from_vector(xd, Shape{60, 4}), labels);
  CHECK(dbl.map_at_r == eval::retrieval(x.data(), 60, 4, labels).map_at_r);

  const auto cq = eval::cluster_quality(t, labels, {.seed = 5});
  CHECK(cq.nmi == eval::cluster_quality(x.data(), 60, 4, labels, {.seed = 5}).nmi);
  CHECK(cq.nmi == doctest::Approx(1.0));

  const Tensor<float> test = Tensor<float>::from_vector({0.1f, 0, 0, 10, 0, 0, 0, 0}, Shape{2, 4});
  const std::vector<float> scores = eval::anomaly_scores(test, t, eval::Metric::L2);
  CHECK(scores == eval::anomaly_scores(test.data(), 2, x.data(), 60, 4, eval::Metric::L2));
  const Tensor<float> narrow = Tensor<float>::zeros(Shape{2, 3});
  CHECK_THROWS_WITH_AS(eval::anomaly_scores(narrow, t), doctest::Contains("columns"), Error);

  std::vector<float> logits = {0, 2, 1, 3, 0, 0};
  CHECK(eval::accuracy_from_logits(Tensor<float>::from_vector(logits, Shape{2, 3}),
                                   std::vector<std::int64_t>{1, 0}) == doctest::Approx(1.0));
  CHECK_THROWS_AS(eval::retrieval(Tensor<float>{}, labels), Error);
  CHECK_THROWS_AS(eval::retrieval(t, std::vector<std::int64_t>(59, 0)), Error);
}

TEST_CASE("viz::tsne takes a tensor and its result saves a scatter SVG with one mark per point") {
  std::vector<std::int64_t> labels;
  const std::vector<float> x = blobs(40, 5, 4, labels);
  const viz::TsneOptions opt{.iterations = 300, .seed = 9};
  const viz::TsneResult a = viz::tsne(Tensor<float>::from_vector(x, Shape{40, 5}), opt);
  const viz::TsneResult b = viz::tsne(x.data(), 40, 5, opt);
  CHECK(a.y == b.y);
  REQUIRE(a.n == 40);

  const auto path = std::filesystem::temp_directory_path() / "dml_test_embed_tsne.svg";
  viz::ScatterOptions style;
  style.title = "blobs";
  a.save_svg(path.string(), labels, style);
  std::ifstream in(path);
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t circles = 0;
  for (std::size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1)) ++circles;
  CHECK(circles == 40 + 4);  // the points and one legend key per class
  CHECK(svg.find("blobs") != std::string::npos);
  std::filesystem::remove(path);
  CHECK_THROWS_AS(a.save_svg(path.string(), std::vector<std::int64_t>(39, 0)), Error);
}
