#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include <dml/dml.hpp>
#include <dml/heads/sub_center.hpp>

using namespace dml;
using namespace dml::heads;

namespace test_sub_center {

using TD = Tensor<double>;
using Labels = Tensor<std::int64_t>;

double rad(double degrees) { return degrees * std::numbers::pi / 180; }

// 2-d embeddings and sub-centres on the unit circle, at the given angles in degrees.
TD on_circle(const std::vector<double>& degrees, double radius = 1) {
  std::vector<double> v;
  for (double d : degrees) {
    v.push_back(radius * std::cos(rad(d)));
    v.push_back(radius * std::sin(rad(d)));
  }
  return TD::from_vector(v, {static_cast<std::int64_t>(degrees.size()), 2});
}

// 3 classes x 3 sub-centres in 2-d: class 0 at 0, 120, 240 degrees; class 1 at
// 60, 180, 300; class 2 at 30, 150, 270 (class 2 gets no samples).
struct ConstructedHead : MarginHead<SubCenter<Arc>, double> {
  ConstructedHead();
};
ConstructedHead::ConstructedHead() : MarginHead<SubCenter<Arc>, double>(2, 3, {.margin = {.s = 10, .m = 0.2}, .k = 3}) {
  NoGrad ng;
  TD w = weight();
  w.copy_(on_circle({0, 120, 240, 60, 180, 300, 30, 150, 270}, 2));  // norms do not matter
}

TEST_CASE("dominant_centers picks the sub-centre most samples of a class are nearest to, and the outliers") {
  ConstructedHead head;
  const MarginHead<SubCenter<Arc>, double>& sub = head;
  // class 0: three near 0 degrees, one near 118 (its sub-centre 1); class 1: two near 180, one near 65.
  TD emb = on_circle({5, 10, -5, 118, 178, 182, 65});
  auto labels = Labels::from_vector({0, 0, 0, 0, 1, 1, 1});
  DominantCenters dc = dominant_centers(sub, emb, labels);  // 75 degrees, PML's default
  CHECK(dc.classes == 3);
  CHECK(dc.k == 3);
  CHECK(dc.center == std::vector<std::int64_t>{0, 1, 0});  // class 2: no samples, sub-centre 0
  CHECK(dc.votes == std::vector<std::int64_t>{3, 1, 0, 1, 2, 0, 0, 0, 0});
  CHECK(dc.outliers == std::vector<std::int64_t>{3, 6});  // 118 and 115 degrees from their dominant sub-centre
  REQUIRE(dc.cos_to_dominant.size() == 7);
  CHECK(dc.cos_to_dominant[0] == doctest::Approx(std::cos(rad(5))));
  CHECK(dc.cos_to_dominant[6] == doctest::Approx(std::cos(rad(115))));
  // A wider angle keeps everyone; a narrow one drops all but the closest.
  CHECK(dominant_centers(sub, emb, labels, 120).outliers.empty());
  CHECK(dominant_centers(sub, emb, labels, 7).outliers == std::vector<std::int64_t>{1, 3, 6});
  // A tie goes to the lower sub-centre, as argmax of a bincount.
  auto tie = dominant_centers(sub, on_circle({5, 125}), Labels::from_vector({0, 0}));
  CHECK(tie.center[0] == 0);
  CHECK(tie.votes[0] == 1);
  CHECK(tie.votes[1] == 1);
}

TEST_CASE("load_dominant_centers makes a plain ArcFace head of the dominant sub-centres") {
  ConstructedHead head;
  const MarginHead<SubCenter<Arc>, double>& sub = head;
  TD emb = on_circle({5, 10, -5, 118, 178, 182, 65});
  auto labels = Labels::from_vector({0, 0, 0, 0, 1, 1, 1});
  DominantCenters dc = dominant_centers(sub, emb, labels);
  CHECK(dominant_center_weight(sub, dc).shape() == Shape{3, 2});
  MarginHead<Arc, double> plain(2, 3, sub.policy().margin);
  load_dominant_centers(plain, sub, dc);
  CHECK(plain.weight().shape() == Shape{3, 2});
  CHECK(plain.policy().s == 10);
  CHECK(plain.policy().m == 0.2);
  const auto w = head.weight().to_vector(), pw = plain.weight().to_vector();
  for (std::int64_t c = 0; c < 3; ++c) {
    const std::int64_t row = c * 3 + dc.center[c];
    CHECK(pw[c * 2] == w[row * 2]);
    CHECK(pw[c * 2 + 1] == w[row * 2 + 1]);
  }
  // Its logits are the scaled cosines to the dominant sub-centres (here 0, 180 and 30 degrees).
  NoGrad ng;
  auto logits = plain(on_circle({20})).to_vector();
  CHECK(logits[0] == doctest::Approx(10 * std::cos(rad(20))));
  CHECK(logits[1] == doctest::Approx(10 * std::cos(rad(160))));
  CHECK(logits[2] == doctest::Approx(10 * std::cos(rad(10))));
  // The new head owns its weights: training it leaves the sub-centre head alone.
  TD pwt = plain.weight();
  pwt.copy_(TD::zeros({3, 2}));
  CHECK(head.weight().to_vector() == w);
}

TEST_CASE("dominant_centers and load_dominant_centers reject what does not fit the head") {
  ConstructedHead head;
  const MarginHead<SubCenter<Arc>, double>& sub = head;
  CHECK_THROWS_WITH_AS(dominant_centers(sub, TD::zeros({2, 3}), Labels::from_vector({0, 1})),
                       doctest::Contains("embedding of shape [2, 3] does not match the head's dimension 2"), Error);
  CHECK_THROWS_WITH_AS(dominant_centers(sub, TD::zeros({2, 2}), Labels::from_vector({0})),
                       doctest::Contains("labels of shape [1] do not match embeddings of shape [2, 2]"), Error);
  CHECK_THROWS_WITH_AS(dominant_centers(sub, on_circle({0, 1}), Labels::from_vector({0, 3})),
                       doctest::Contains("index 3 at position 1 is outside [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(dominant_centers(sub, on_circle({0}), Labels::from_vector({0}), 200),
                       doctest::Contains("max_angle_degrees must lie in [0, 180], got 200"), Error);
  DominantCenters dc = dominant_centers(sub, on_circle({0}), Labels::from_vector({0}));
  dc.center[1] = 3;
  MarginHead<Arc, double> plain(2, 3);
  CHECK_THROWS_WITH_AS(load_dominant_centers(plain, sub, dc),
                       doctest::Contains("class 1's dominant sub-centre 3 is outside [0, 3)"), Error);
  MarginHead<SubCenter<Arc>, double> other(2, 3, {.k = 2});
  CHECK_THROWS_WITH_AS(dominant_center_weight(other, dominant_centers(sub, on_circle({0}), Labels::from_vector({0}))),
                       doctest::Contains("dominant centres of 3 classes x 3 sub-centres do not match the head's 3 x 2"),
                       Error);
  MarginHead<Arc, double> wrong(2, 4);
  CHECK_THROWS_WITH_AS(load_dominant_centers(wrong, sub, dominant_centers(sub, on_circle({0}), Labels::from_vector({0}))),
                       doctest::Contains("a head of 4 classes x 2 dims cannot take the sub-centre head's 3 x 2"), Error);
}

}  // namespace test_sub_center
