#include <doctest/doctest.h>

#include <dml/core/shape.hpp>

using dml::Shape;

TEST_CASE("shape reports rank, extents and element count") {
  Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s[0] == 2);
  CHECK(s[-1] == 4);
  CHECK(s.numel() == 24);
  CHECK(s.str() == "[2, 3, 4]");
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{}.str() == "[]");
  CHECK(Shape{3, 0}.numel() == 0);
}

TEST_CASE("shape rejects negative extents, excess rank and bad axes") {
  CHECK_THROWS_WITH_AS(Shape({2, -1}), doctest::Contains("negative extent -1"), dml::Error);
  CHECK_THROWS_WITH_AS(Shape({1, 1, 1, 1, 1, 1, 1}), doctest::Contains("exceeds the maximum rank"), dml::Error);
  CHECK_THROWS_WITH_AS(Shape({2, 3})[2], doctest::Contains("axis 2 is out of range for shape [2, 3]"), dml::Error);
}

TEST_CASE("broadcast_shapes follows numpy and names both shapes on failure") {
  CHECK(dml::broadcast_shapes(Shape{4, 3}, Shape{3}, "add") == Shape{4, 3});
  CHECK(dml::broadcast_shapes(Shape{4, 1}, Shape{1, 5}, "add") == Shape{4, 5});
  CHECK(dml::broadcast_shapes(Shape{}, Shape{2, 2}, "add") == Shape{2, 2});
  CHECK_THROWS_WITH_AS(dml::broadcast_shapes(Shape{4, 3}, Shape{4}, "mul"),
                       doctest::Contains("mul: shapes [4, 3] and [4] cannot be broadcast"), dml::Error);
}
