// dml/losses/methods.hpp: the embedding losses by name, for programs that
// pick one at run time (reproduce --methods, dml train --loss) while the loss
// type stays a compile-time choice. heads/methods.hpp is the same for the
// classifier heads.
//
//   losses::with_embedding_loss("ms", [&](auto method) {
//     auto loss = method.template make<float, Cpu>(classes, 512, seed);  // losses::MultiSimilarity<miners::MultiSimilarity>
//     learn.add_loss(loss, 1.0, "ms");
//     ...                          // method.kProxies: it has a proxies parameter; method.kPairs: wants P x K batches
//   });
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "../config.hpp"
#include "../heads/methods.hpp"
#include "embedding_loss.hpp"

namespace dml::losses {

// A pair or triplet loss by rule: make<T, D>() builds PairLoss<Rule, T, D>.
template <class Rule>
struct PairMethod {
  static constexpr bool kProxies = false;  // no learned parameters
  static constexpr bool kPairs = true;     // needs positives in every batch: P x K batches
  Rule rule{};
  template <class T, class D>
  PairLoss<Rule, T, D> make(std::int64_t /*classes*/, std::int64_t /*dim*/, std::uint64_t /*seed*/) const {
    return PairLoss<Rule, T, D>(rule);
  }
};

// A proxy loss by rule: make<T, D>(classes, dim, seed) builds its [classes, dim] proxies.
template <class Rule, ProxyRows kRows>
struct ProxyMethod {
  static constexpr bool kProxies = true;
  static constexpr bool kPairs = false;  // every sample meets every proxy: any batch will do
  Rule rule{};
  template <class T, class D>
  ProxyLoss<Rule, kRows, T, D> make(std::int64_t classes, std::int64_t dim, std::uint64_t seed) const {
    return ProxyLoss<Rule, kRows, T, D>(classes, dim, rule, seed);
  }
};

// The embedding losses by name, each with its miner and distance. The
// triplet loss mines batch-hard triplets with margin 0.1 on normalised
// Euclidean distances (FaceNet's "batch hard" pairing; PML's default margin
// 0.05 is for all triplets); the others have PML 2.x's defaults.
inline constexpr std::array<heads::MethodInfo, 8> kEmbeddingMethods{{
    {"triplet", "tripletbatchhard", "Triplet (batch-hard)"},
    {"ms", "multisimilarity", "Multi-similarity"},
    {"proxyanchor", "proxyanchor", "ProxyAnchor"},
    {"supcon", "supcon", "SupCon"},
    {"contrastive", "contrastive", "Contrastive"},
    {"circle", "circle", "Circle"},
    {"ntxent", "ntxent", "NT-Xent"},
    {"proxynca", "proxynca", "ProxyNCA"},
}};

// Margin of the "triplet" entry.
inline constexpr double kBatchHardMargin = 0.1;

// The embedding loss named `name` (key or alias); nullptr when there is none.
inline const heads::MethodInfo* find_embedding_method(std::string_view name) {
  for (const heads::MethodInfo& m : kEmbeddingMethods)
    if (name == m.key || name == m.alias) return &m;
  return nullptr;
}

// Calls f(method) with the PairMethod or ProxyMethod of `name` (see
// kEmbeddingMethods) and returns what f returns. Throws dml::Error naming the
// valid names for an unknown one.
template <class F>
decltype(auto) with_embedding_loss(std::string_view name, F&& f) {
  const heads::MethodInfo* m = find_embedding_method(name);
  if (!m) {
    std::string valid;
    for (const heads::MethodInfo& e : kEmbeddingMethods) valid += (valid.empty() ? "" : ", ") + std::string(e.key);
    throw Error(::dml::detail::concat("unknown embedding loss '", name, "' (expected one of ", valid, ")"));
  }
  const std::string_view key = m->key;
  if (key == "triplet")
    return std::forward<F>(f)(
        PairMethod<rules::TripletMargin<miners::BatchHard, distances::Euclidean>>{{.margin = kBatchHardMargin}});
  if (key == "ms") return std::forward<F>(f)(PairMethod<rules::MultiSimilarity<miners::MultiSimilarity>>{});
  if (key == "proxyanchor")
    return std::forward<F>(f)(ProxyMethod<rules::ProxyAnchor<distances::Cosine>, ProxyRows::Proxies>{});
  if (key == "supcon") return std::forward<F>(f)(PairMethod<rules::SupCon<miners::AllPairs>>{});
  if (key == "contrastive") return std::forward<F>(f)(PairMethod<rules::Contrastive<miners::AllPairs>>{});
  if (key == "circle") return std::forward<F>(f)(PairMethod<rules::Circle<miners::AllPairs>>{});
  if (key == "ntxent") return std::forward<F>(f)(PairMethod<rules::NTXent<miners::AllPairs>>{});
  return std::forward<F>(f)(
      ProxyMethod<rules::ProxyNCA<distances::SquaredEuclidean>, ProxyRows::Embeddings>{});
}

}  // namespace dml::losses
