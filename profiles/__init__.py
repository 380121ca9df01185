"""Who is who and what each may do: profiles, categories, schedules, and the pure `decide()` (issue 3)."""
