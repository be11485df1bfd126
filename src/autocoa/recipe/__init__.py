"""The whole recipe as resumable stages: its configuration (:mod:`.config`), the stage table
(:mod:`.stages`), ``autocoa demo`` (:mod:`autocoa.demo`) and multi-seed studies (:mod:`.study`)."""
