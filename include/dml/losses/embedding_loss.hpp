// dml/losses/embedding_loss.hpp: embedding losses as modules for
// train::Learner::add_loss, chosen at compile time by their rule, miner and
// distance (rules.hpp, miners.hpp, distances.hpp):
//
//   losses::MultiSimilarity<miners::MultiSimilarity> ms;            // PML's defaults
//   losses::TripletMargin<miners::BatchHard> triplet({.margin = 0.1});
//   losses::ProxyAnchor<> proxies(classes, 512);                     // learned proxies
//   train::Learner learn(body, data, optim::AdamW{...});             // no head
//   learn.add_loss(ms, 1.0, "ms");
//
// Pair losses compare the batch with itself (the anchor is neither its own
// positive nor negative); proxy losses compare it with one learned proxy per
// class (a parameter "proxies", [classes, dim]). Each is one pairwise matrix
// through the backend's GEMM and one row kernel, on either device.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/random.hpp"
#include "../nn/init.hpp"
#include "../nn/module.hpp"
#include "../ops/row_loss.hpp"
#include "rules.hpp"

namespace dml::losses {

namespace detail {
template <class T, class D>
void check_batch(const Tensor<T, D>& emb, const Tensor<std::int64_t, D>& labels, const char* name) {
  DML_CHECK(emb.defined() && emb.rank() == 2, name, ": embeddings must be [N, dim], got ",
            emb.defined() ? emb.shape().str() : "undefined");
  DML_CHECK(labels.defined() && labels.rank() == 1 && labels.dim(0) == emb.dim(0), name, ": labels of shape ",
            labels.defined() ? labels.shape().str() : "undefined", " do not match embeddings of shape ",
            emb.shape().str());
}
}  // namespace detail

// A loss over the pairs of a batch: rule.distance's matrix of the embeddings
// with themselves, then the rule row by row. No parameters, no state.
template <class Rule, class T = float, class D = Cpu>
class PairLoss : public nn::Module<T, D> {
 public:
  // Throws dml::Error for hyper-parameters the rule refuses (named).
  explicit PairLoss(Rule rule = {}) : rule_(rule) { rule_.validate(); }

  // The scalar loss of a batch (0 when it has no positive or negative pair).
  // Throws for shapes that disagree.
  Tensor<T, D> operator()(const Tensor<T, D>& emb, const Tensor<std::int64_t, D>& labels) {
    detail::check_batch(emb, labels, Rule::kName);
    return ops::row_loss(rule_, rule_.distance.matrix(emb, emb), labels, labels, true, Rule::kName);
  }
  const Rule& rule() const noexcept { return rule_; }
  std::string type_name() const override { return Rule::kName; }

 private:
  Rule rule_;
};

template <class Miner = miners::AllTriplets, class Dist = distances::Euclidean, class T = float, class D = Cpu>
using TripletMargin = PairLoss<rules::TripletMargin<Miner, Dist>, T, D>;
template <class Miner = miners::AllPairs, class Dist = distances::Euclidean, class T = float, class D = Cpu>
using Contrastive = PairLoss<rules::Contrastive<Miner, Dist>, T, D>;
template <class Miner = miners::AllPairs, class Dist = distances::Cosine, class T = float, class D = Cpu>
using MultiSimilarity = PairLoss<rules::MultiSimilarity<Miner, Dist>, T, D>;
template <class Miner = miners::AllPairs, class Dist = distances::Cosine, class T = float, class D = Cpu>
using Circle = PairLoss<rules::Circle<Miner, Dist>, T, D>;
template <class Miner = miners::AllPairs, class Dist = distances::Cosine, class T = float, class D = Cpu>
using NTXent = PairLoss<rules::NTXent<Miner, Dist>, T, D>;
template <class Miner = miners::AllPairs, class Dist = distances::Cosine, class T = float, class D = Cpu>
using SupCon = PairLoss<rules::SupCon<Miner, Dist>, T, D>;

// How a proxy loss lays out its matrix: embeddings x proxies (rows are the
// batch, ProxyNCA) or proxies x embeddings (rows are the classes, ProxyAnchor).
enum class ProxyRows { Embeddings, Proxies };

// A loss against one learned proxy per class (parameter "proxies",
// [classes, dim]). Labels must lie in [0, classes).
template <class Rule, ProxyRows kRows, class T = float, class D = Cpu>
class ProxyLoss : public nn::Module<T, D> {
 public:
  // Proxies drawn from N(0, stddev^2) with a generator seeded `seed`: PML
  // draws ProxyNCA's from N(0, 1) and ProxyAnchor's with Kaiming's
  // fan-out rule, N(0, 2 / classes). Throws for classes or dim < 1 or bad
  // hyper-parameters.
  ProxyLoss(std::int64_t classes, std::int64_t dim, Rule rule = {}, std::uint64_t seed = 0)
      : rule_(rule), classes_(classes) {
    DML_CHECK(classes >= 1 && dim >= 1, Rule::kName, ": classes and dim must be >= 1, got ", classes, " and ", dim);
    rule_.validate();
    proxies_ = this->register_parameter("proxies", Tensor<T, D>::empty(Shape{classes, dim}));
    Generator gen(seed);
    const double stddev = kRows == ProxyRows::Proxies ? std::sqrt(2.0 / static_cast<double>(classes)) : 1.0;
    nn::init::normal_(proxies_, gen, 0.0, stddev);
    std::vector<std::int64_t> ids(static_cast<std::size_t>(classes));
    for (std::int64_t c = 0; c < classes; ++c) ids[static_cast<std::size_t>(c)] = c;
    proxy_labels_ = Tensor<std::int64_t, Cpu>::from_vector(ids, Shape{classes}).template to<D>();
  }

  Tensor<T, D> operator()(const Tensor<T, D>& emb, const Tensor<std::int64_t, D>& labels) {
    detail::check_batch(emb, labels, Rule::kName);
    DML_CHECK(emb.dim(1) == proxies_.dim(1), Rule::kName, ": embeddings of shape ", emb.shape().str(),
              " do not match the proxies' dimension ", proxies_.dim(1));
    ::dml::detail::expect_indices(labels, classes_, Rule::kName);
    if constexpr (kRows == ProxyRows::Proxies)
      return ops::row_loss(rule_, rule_.distance.matrix(proxies_, emb), proxy_labels_, labels, false, Rule::kName);
    else
      return ops::row_loss(rule_, rule_.distance.matrix(emb, proxies_), labels, proxy_labels_, false, Rule::kName);
  }
  const Tensor<T, D>& proxies() const noexcept { return proxies_; }
  const Rule& rule() const noexcept { return rule_; }
  std::string type_name() const override { return Rule::kName; }

 private:
  Rule rule_;
  std::int64_t classes_;
  Tensor<T, D> proxies_;
  Tensor<std::int64_t, D> proxy_labels_;
};

template <class Dist = distances::SquaredEuclidean, class T = float, class D = Cpu>
using ProxyNCA = ProxyLoss<rules::ProxyNCA<Dist>, ProxyRows::Embeddings, T, D>;
template <class Dist = distances::Cosine, class T = float, class D = Cpu>
using ProxyAnchor = ProxyLoss<rules::ProxyAnchor<Dist>, ProxyRows::Proxies, T, D>;

}  // namespace dml::losses
