import java.sql.CallableStatement;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/**
 * The pgjdbc recipes of docs/clients.md, run through the proxy by
 * e2e/jdbc_test.go: java MigrateJdbc URL USER PASSWORD SCENARIO.
 *
 * <p>Each step prints one line of JSON: {"step": name, "rows": [...]} with
 * the rows it read (every column as its text, or null), {"step": name,
 * "count": n} with an update count, or {"step": name, "error": SQLSTATE}.
 */
public class MigrateJdbc {
  static final String INVOICE_FIELDS =
      "[{\"name\":\"id\",\"type\":\"Int\"},{\"name\":\"title\",\"type\":\"String\",\"maxLength\":200,\"nullable\":false}]";

  /** A step: the JSON fields of what it returns, after its name. */
  interface Step {
    String run() throws SQLException;
  }

  public static void main(String[] args) throws SQLException {
    String url = args[0], user = args[1], password = args[2];
    try (Connection conn = DriverManager.getConnection(url, user, password)) {
      switch (args[3]) {
        case "commands":
          Properties props = new Properties();
          props.setProperty("user", user);
          props.setProperty("password", password);
          props.setProperty("escapeSyntaxCallMode", "callIfNoReturn");
          try (Connection callMode = DriverManager.getConnection(url, props)) {
            commands(conn, callMode);
          }
          break;
        case "transaction":
          transaction(conn);
          break;
        default:
          throw new IllegalArgumentException("no scenario " + args[3]);
      }
    }
  }

  /**
   * The ways to run a command and read its rows, in autocommit mode; callMode
   * is a connection with escapeSyntaxCallMode=callIfNoReturn.
   */
  static void commands(Connection conn, Connection callMode) {
    // The escape syntax: pgjdbc sends
    // select * from migrate.create_model($1, $2) as result.
    step("escape_create_model", () -> {
      try (CallableStatement call = conn.prepareCall("{call migrate.create_model(?, ?)}")) {
        call.setString(1, "invoice");
        call.setString(2, INVOICE_FIELDS);
        try (ResultSet rs = call.executeQuery()) {
          return rows(rs);
        }
      }
    });
    // Reading the result row by column name and type.
    step("escape_add_field", () -> {
      try (CallableStatement call = conn.prepareCall("{call migrate.add_field(?, ?)}")) {
        call.setString(1, "invoice");
        call.setString(2, "{\"name\":\"status\",\"type\":\"String\",\"default\":\"draft\"}");
        try (ResultSet rs = call.executeQuery()) {
          rs.next();
          String status = rs.getString("status"); // applied, unchanged or planned
          String statements = rs.getString("statements");
          int attempts = rs.getInt("attempts");
          long durationMs = rs.getLong("duration_ms");
          return rowsOf(row("status", status, "statements", statements,
              "attempts", Integer.toString(attempts), "duration_ms", Long.toString(durationMs)));
        }
      }
    });
    // Named arguments, and a boolean parameter (pgjdbc sends TRUE or FALSE).
    step("escape_dry_run", () -> {
      try (CallableStatement call =
          conn.prepareCall("{call migrate.add_field(model => ?, field => ?, dry_run => ?)}")) {
        call.setString(1, "invoice");
        call.setString(2, "{\"name\":\"priority\",\"type\":\"Int\"}");
        call.setBoolean(3, true);
        try (ResultSet rs = call.executeQuery()) {
          return rows(rs);
        }
      }
    });
    // With escapeSyntaxCallMode=callIfNoReturn (or call), pgjdbc sends
    // call migrate.list_models().
    step("escape_call_mode", () -> {
      try (CallableStatement call = callMode.prepareCall("{call migrate.list_models()}");
          ResultSet rs = call.executeQuery()) {
        return rows(rs);
      }
    });
    // A plain CALL in a PreparedStatement, executed enough times for
    // pgjdbc to switch to a named server-side statement (prepareThreshold).
    step("prepared_call", () -> {
      try (PreparedStatement ps = conn.prepareStatement("CALL migrate.describe(?)")) {
        String last = null;
        for (int i = 0; i < 6; i++) {
          ps.setString(1, "invoice");
          try (ResultSet rs = ps.executeQuery()) {
            last = rows(rs);
          }
        }
        return last;
      }
    });
    // execute() reports a result set, which getResultSet() returns.
    step("escape_execute", () -> {
      try (CallableStatement call = conn.prepareCall("{call migrate.add_field(?, ?)}")) {
        call.setString(1, "invoice");
        call.setString(2, "{\"name\":\"note\",\"type\":\"Text\"}");
        if (!call.execute()) {
          return "\"count\": " + call.getUpdateCount();
        }
        try (ResultSet rs = call.getResultSet()) {
          return rows(rs);
        }
      }
    });
    // A CallableStatement's executeUpdate() runs the command and returns
    // 0: pgjdbc drops the result row.
    step("escape_execute_update", () -> {
      try (CallableStatement call = conn.prepareCall("{call migrate.add_field(?, ?)}")) {
        call.setString(1, "invoice");
        call.setString(2, "{\"name\":\"memo\",\"type\":\"Text\"}");
        return "\"count\": " + call.executeUpdate();
      }
    });
    // A PreparedStatement's or a Statement's executeUpdate() runs the
    // command, then throws (0100E): a result was returned when none was
    // expected.
    step("prepared_execute_update", () -> {
      try (PreparedStatement ps = conn.prepareStatement("CALL migrate.add_field(?, ?)")) {
        ps.setString(1, "invoice");
        ps.setString(2, "{\"name\":\"code\",\"type\":\"Int\"}");
        return "\"count\": " + ps.executeUpdate();
      }
    });
    step("statement_execute_update", () -> {
      try (Statement st = conn.createStatement()) {
        return "\"count\": "
            + st.executeUpdate("CALL migrate.add_field('invoice', '{\"name\":\"ref\",\"type\":\"Text\"}')");
      }
    });
    // A Statement sends a plain CALL, literals and all.
    step("statement_describe", () -> {
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("CALL migrate.describe('invoice')")) {
        return rows(rs);
      }
    });
    // What the escape syntax sends may be written by hand, alias or not,
    // but with nothing more; a call elsewhere in a SELECT is PostgreSQL's.
    step("select_form", () -> {
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SELECT * FROM migrate.list_models()")) {
        return rows(rs);
      }
    });
    step("select_more", () -> {
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SELECT * FROM migrate.list_models() WHERE model <> 'invoice'")) {
        return rows(rs);
      }
    });
    step("select_elsewhere", () -> {
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SELECT migrate.list_models()")) {
        return rows(rs);
      }
    });
    // Only prepareCall translates the escape syntax: a PreparedStatement
    // sends it as written, which PostgreSQL cannot parse.
    step("prepared_escape", () -> {
      try (PreparedStatement ps = conn.prepareStatement("{call migrate.describe(?)}")) {
        ps.setString(1, "invoice");
        try (ResultSet rs = ps.executeQuery()) {
          return rows(rs);
        }
      }
    });
    // A function-style call with an out parameter: pgjdbc makes the out
    // parameter a first argument, which no migrate procedure takes.
    step("escape_out_parameter", () -> {
      try (CallableStatement call = conn.prepareCall("{? = call migrate.describe(?)}")) {
        call.registerOutParameter(1, Types.OTHER);
        call.setString(2, "invoice");
        call.execute();
        return "\"count\": " + call.getUpdateCount();
      }
    });
  }

  /**
   * Migrate commands with autocommit off: each is refused (25001), as in a
   * transaction block, and changes nothing.
   */
  static void transaction(Connection conn) {
    step("create_model", () -> {
      try (CallableStatement call = conn.prepareCall("{call migrate.create_model(?, ?)}")) {
        call.setString(1, "invoice");
        call.setString(2, INVOICE_FIELDS);
        try (ResultSet rs = call.executeQuery()) {
          return rows(rs);
        }
      }
    });
    // pgjdbc sends BEGIN with the INSERT, then the command on its own.
    step("after_insert", () -> {
      conn.setAutoCommit(false);
      try (Statement st = conn.createStatement()) {
        st.executeUpdate("INSERT INTO invoice (id, title) VALUES (1, 'first')");
      }
      try {
        return addField(conn, "status");
      } finally {
        conn.rollback();
        conn.setAutoCommit(true);
      }
    });
    // pgjdbc sends BEGIN and the command in one pipeline, before one Sync.
    step("first_in_transaction", () -> {
      conn.setAutoCommit(false);
      try {
        return addField(conn, "memo");
      } finally {
        conn.rollback();
        conn.setAutoCommit(true);
      }
    });
    step("describe", () -> {
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("CALL migrate.describe('invoice')")) {
        return rows(rs);
      }
    });
    step("count", () -> {
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SELECT count(*) FROM invoice")) {
        return rows(rs);
      }
    });
  }

  /** Runs add_field for a Text field name and returns its rows. */
  static String addField(Connection conn, String name) throws SQLException {
    try (CallableStatement call = conn.prepareCall("{call migrate.add_field(?, ?)}")) {
      call.setString(1, "invoice");
      call.setString(2, "{\"name\":\"" + name + "\",\"type\":\"Text\"}");
      try (ResultSet rs = call.executeQuery()) {
        return rows(rs);
      }
    }
  }

  /** Prints the line of a step: what it returns, or its error. */
  static void step(String name, Step step) {
    String result;
    try {
      result = step.run();
    } catch (SQLException e) {
      result = "\"error\": " + json(e.getSQLState());
    }
    System.out.println("{\"step\": " + json(name) + ", " + result + "}");
  }

  /** The rows of rs, every column as its text. */
  static String rows(ResultSet rs) throws SQLException {
    ResultSetMetaData md = rs.getMetaData();
    List<String> rows = new ArrayList<>();
    while (rs.next()) {
      String[] pairs = new String[2 * md.getColumnCount()];
      for (int i = 1; i <= md.getColumnCount(); i++) {
        pairs[2 * i - 2] = md.getColumnLabel(i);
        pairs[2 * i - 1] = rs.getString(i);
      }
      rows.add(row(pairs));
    }
    return rowsOf(rows.toArray(new String[0]));
  }

  static String rowsOf(String... rows) {
    return "\"rows\": [" + String.join(", ", rows) + "]";
  }

  /** A row as a JSON object of names and values, given in turn. */
  static String row(String... pairs) {
    List<String> fields = new ArrayList<>();
    for (int i = 0; i < pairs.length; i += 2) {
      fields.add(json(pairs[i]) + ": " + json(pairs[i + 1]));
    }
    return "{" + String.join(", ", fields) + "}";
  }

  /** s as a JSON string, or null. */
  static String json(String s) {
    if (s == null) {
      return "null";
    }
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') {
        b.append('\\').append(c);
      } else if (c < 0x20) {
        b.append(String.format("\\u%04x", (int) c));
      } else {
        b.append(c);
      }
    }
    return b.append('"').toString();
  }
}
