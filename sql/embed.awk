# embed.awk - turns sql/schema.sql into C: const char bx_schema_sql[].
# Used by the Makefile and tests/fuzz/run-libfuzzer.sh.
BEGIN {
    print "/* Generated from sql/schema.sql by sql/embed.awk. */"
    print "const char bx_schema_sql[] ="
}
{
    gsub(/\\/, "\\\\")
    gsub(/"/, "\\\"")
    print "    \"" $0 "\\n\""
}
END { print "    ;" }
