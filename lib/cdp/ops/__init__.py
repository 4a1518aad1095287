"""Operations of the lake itself: maintenance and the record of job runs."""
